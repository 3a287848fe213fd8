//! The Keel hypervisor.
#![cfg_attr(not(test), no_std)]
