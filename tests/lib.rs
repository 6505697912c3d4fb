//! labelhost's end-to-end test package: see `integration/main.rs`. This library is empty;
//! the fixture plugins live in `fixtures/`.
