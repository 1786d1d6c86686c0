//! Protocol knowledge shared by the compiler and the printer: header
//! fields (base, offset, length, datatype), datatypes and symbolic constants.
