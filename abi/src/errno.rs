//! Error codes: Xen's `xen/include/public/errno.h` values. A failing hypercall
//! returns the negated value in RAX, exactly as on Xen (reference:
//! `docs/abi/errno.md`).
//!
//! Bare-metal difference: hardware has no error codes; it faults. A Keel guest's
//! hypercalls never fault for bad arguments: they return one of these codes, and
//! a hypercall Keel does not implement returns `-ENOSYS`.

/// A Xen errno value (positive; hypercalls return it negated).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($(#[doc = $doc:literal])* $name:ident = $v:expr;)*) => {
        impl Errno {
            $($(#[doc = $doc])* pub const $name: Errno = Errno($v);)*

            /// The one-line description (the constant's rustdoc), or `None` if unknown.
            pub const fn description(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some(concat!($($doc),*)),)*
                    _ => None,
                }
            }

            /// The symbolic name, for diagnostics ("ENOSYS"), or `None` if unknown.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
        /// Every error code Keel may return, in ascending order (used by fixtures and docs).
        pub const ALL: &[Errno] = &[$(Errno::$name),*];
    };
}

errnos! {
    /// Operation not permitted.
    EPERM = 1;
    /// No such file, entry or object.
    ENOENT = 2;
    /// No such process or domain.
    ESRCH = 3;
    /// Interrupted; the caller should retry.
    EINTR = 4;
    /// I/O error.
    EIO = 5;
    /// No such device or address.
    ENXIO = 6;
    /// Argument list too long.
    E2BIG = 7;
    /// Bad file or port number.
    EBADF = 9;
    /// Try again.
    EAGAIN = 11;
    /// Out of memory.
    ENOMEM = 12;
    /// Permission denied.
    EACCES = 13;
    /// Bad address: a guest pointer that is not canonical, not mapped, not permitted,
    /// not owned by the guest, or of the wrong frame type.
    EFAULT = 14;
    /// Resource busy.
    EBUSY = 16;
    /// Already exists.
    EEXIST = 17;
    /// No such device.
    ENODEV = 19;
    /// Invalid argument.
    EINVAL = 22;
    /// No space left.
    ENOSPC = 28;
    /// Result out of range.
    ERANGE = 34;
    /// Function not implemented: the answer to every hypercall or sub-command Keel
    /// does not implement.
    ENOSYS = 38;
    /// Timer expired: a single-shot timer with `VCPU_SSHOTTMR_future` whose
    /// deadline has passed (since 1.0).
    ETIME = 62;
    /// Operation not supported.
    EOPNOTSUPP = 95;
}

impl Errno {
    /// The value a hypercall returns in RAX for this error.
    pub const fn as_return(self) -> i64 {
        -(self.0 as i64)
    }

    /// Decode a hypercall return value: `Ok(value)` when non-negative.
    pub const fn from_return(ret: i64) -> Result<u64, Errno> {
        if ret < 0 {
            Err(Errno((-ret) as i32))
        } else {
            Ok(ret as u64)
        }
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "-{n}"),
            None => write!(f, "-{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(
            Errno::from_return(Errno::ENOSYS.as_return()),
            Err(Errno::ENOSYS)
        );
        assert_eq!(Errno::from_return(5), Ok(5));
        assert_eq!(Errno::ENOSYS.name(), Some("ENOSYS"));
        assert_eq!(Errno(1000).name(), None);
        assert!(ALL.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
