//! Model values <-> nf_tables netlink messages (tables, chains, rules,
//! sets, elements, objects, flowtables).
