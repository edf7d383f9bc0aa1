//! Thin handlers: typed inputs in, one call into the domain, a reply out.
