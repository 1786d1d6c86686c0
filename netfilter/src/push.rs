//! Push: a whole value into the kernel as one transaction.
