//! A simulated Akua API on loopback, for the demo and the tests.
