//! Rendering events into the bytes each sink sends.
