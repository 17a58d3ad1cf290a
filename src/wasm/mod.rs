//! The browser backend: fetch transport and IndexedDB persistence.
