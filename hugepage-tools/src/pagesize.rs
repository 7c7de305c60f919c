//! Hugepage sizes: parsing (`2M`, `1G`, `2048kB`, bytes), display and sysfs directory names.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Errors from parsing a page size.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageSizeError {
    /// The input was empty.
    #[error("empty page size")]
    Empty,
    /// The input is not a number with an optional K/M/G/T suffix.
    #[error("invalid page size {input:?}: expected a number with an optional K, M, G or T suffix (e.g. 2M, 1G)")]
    Invalid {
        /// The rejected input.
        input: String,
    },
    /// The size is zero.
    #[error("page size {input:?} is zero")]
    Zero {
        /// The rejected input.
        input: String,
    },
    /// A size given in bytes that is not a whole number of KiB.
    #[error("page size {input:?} is not a multiple of 1 KiB")]
    NotKibMultiple {
        /// The rejected input.
        input: String,
    },
    /// The size does not fit in 64 bits of bytes.
    #[error("page size {input:?} is too large")]
    TooLarge {
        /// The rejected input.
        input: String,
    },
}

/// A hugepage size, held in KiB (the unit sysfs uses: `hugepages-2048kB`).
///
/// Any positive whole number of KiB is representable, so `3M` parses: whether the kernel
/// supports a size is decided by the presence of its sysfs directory, not by this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageSize {
    kib: u64,
}

/// Largest KiB count whose byte count still fits in a `u64`.
const MAX_KIB: u64 = u64::MAX / 1024;

impl PageSize {
    /// 2 MiB, the default hugepage size on x86-64.
    pub const SIZE_2M: PageSize = PageSize { kib: 2048 };
    /// 1 GiB, the gigantic page size on x86-64.
    pub const SIZE_1G: PageSize = PageSize { kib: 1024 * 1024 };

    /// A page size of `kib` KiB; `None` for zero or for sizes whose byte count overflows `u64`.
    pub fn from_kib(kib: u64) -> Option<PageSize> {
        (kib != 0 && kib <= MAX_KIB).then_some(PageSize { kib })
    }

    /// The size in KiB.
    pub fn kib(self) -> u64 {
        self.kib
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        // Cannot overflow: construction bounds `kib` by `MAX_KIB`.
        self.kib * 1024
    }

    /// The name of this size's directory in sysfs, e.g. `hugepages-2048kB`.
    pub fn sysfs_dir_name(self) -> String {
        format!("hugepages-{}kB", self.kib)
    }

    /// Parses a sysfs directory name such as `hugepages-2048kB`.
    pub fn from_sysfs_dir_name(name: &str) -> Option<PageSize> {
        let kib = name.strip_prefix("hugepages-")?.strip_suffix("kB")?;
        if kib.is_empty() || !kib.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        PageSize::from_kib(kib.parse().ok()?)
    }
}

impl fmt::Display for PageSize {
    /// `1G`, `2M`, `64K`: the largest binary unit that divides the size exactly, the same form
    /// `/proc/mounts` uses for hugetlbfs' `pagesize=` option.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB_IN_KIB: u64 = 1024;
        const GIB_IN_KIB: u64 = 1024 * 1024;
        const TIB_IN_KIB: u64 = 1024 * 1024 * 1024;
        let k = self.kib;
        if k % TIB_IN_KIB == 0 {
            write!(f, "{}T", k / TIB_IN_KIB)
        } else if k % GIB_IN_KIB == 0 {
            write!(f, "{}G", k / GIB_IN_KIB)
        } else if k % MIB_IN_KIB == 0 {
            write!(f, "{}M", k / MIB_IN_KIB)
        } else {
            write!(f, "{k}K")
        }
    }
}

impl FromStr for PageSize {
    type Err = PageSizeError;

    /// Accepts memparse-style sizes as the kernel does for `hugepagesz=` and `pagesize=`:
    /// a decimal number of bytes, or a number followed by `K`, `M`, `G` or `T` (binary units,
    /// case-insensitive, optionally followed by `B` or `iB`: `2M`, `2MB`, `2MiB`, `2048kB`).
    fn from_str(s: &str) -> Result<PageSize, PageSizeError> {
        let input = s.trim();
        if input.is_empty() {
            return Err(PageSizeError::Empty);
        }
        let invalid = || PageSizeError::Invalid {
            input: input.to_owned(),
        };
        let digits_end = input
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(input.len());
        let (number, suffix) = input.split_at(digits_end);
        if number.is_empty() {
            return Err(invalid());
        }
        let too_large = || PageSizeError::TooLarge {
            input: input.to_owned(),
        };
        let value: u64 = number.parse().map_err(|_| too_large())?;
        let suffix = suffix.to_ascii_lowercase();
        let unit = suffix
            .strip_suffix("ib")
            .or_else(|| suffix.strip_suffix('b'))
            .unwrap_or(&suffix);
        let kib = match unit {
            "" => {
                if value % 1024 != 0 {
                    return Err(PageSizeError::NotKibMultiple {
                        input: input.to_owned(),
                    });
                }
                value / 1024
            }
            "k" => value,
            "m" => value.checked_mul(1024).ok_or_else(too_large)?,
            "g" => value.checked_mul(1024 * 1024).ok_or_else(too_large)?,
            "t" => value
                .checked_mul(1024 * 1024 * 1024)
                .ok_or_else(too_large)?,
            _ => return Err(invalid()),
        };
        if kib == 0 {
            return Err(PageSizeError::Zero {
                input: input.to_owned(),
            });
        }
        PageSize::from_kib(kib).ok_or_else(too_large)
    }
}

impl Serialize for PageSize {
    /// Serialised as its display form (`"2M"`); structures that carry a size also carry it
    /// as a number of KiB next to it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Formats a list of sizes as `2M, 1G` (or `none`), for error messages.
pub(crate) fn display_sizes(sizes: &[PageSize]) -> String {
    if sizes.is_empty() {
        return "none".to_owned();
    }
    sizes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        for (input, kib) in [
            ("2M", 2048),
            ("2m", 2048),
            ("2MB", 2048),
            ("2MiB", 2048),
            ("2048kB", 2048),
            ("2048K", 2048),
            ("2097152", 2048),
            ("1G", 1024 * 1024),
            ("1gb", 1024 * 1024),
            ("64K", 64),
            (" 3M ", 3072),
        ] {
            assert_eq!(input.parse::<PageSize>().unwrap().kib(), kib, "{input}");
        }
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!("".parse::<PageSize>(), Err(PageSizeError::Empty));
        assert!(matches!(
            "M".parse::<PageSize>(),
            Err(PageSizeError::Invalid { .. })
        ));
        assert!(matches!(
            "2X".parse::<PageSize>(),
            Err(PageSizeError::Invalid { .. })
        ));
        assert!(matches!(
            "-2M".parse::<PageSize>(),
            Err(PageSizeError::Invalid { .. })
        ));
        assert!(matches!(
            "0M".parse::<PageSize>(),
            Err(PageSizeError::Zero { .. })
        ));
        assert!(matches!(
            "1000".parse::<PageSize>(),
            Err(PageSizeError::NotKibMultiple { .. })
        ));
        assert!(matches!(
            "99999999999999999999T".parse::<PageSize>(),
            Err(PageSizeError::TooLarge { .. })
        ));
        assert!(matches!(
            "18014398509481984T".parse::<PageSize>(),
            Err(PageSizeError::TooLarge { .. })
        ));
    }

    #[test]
    fn display_round_trips() {
        for s in ["2M", "1G", "64K", "3M", "16G", "2T"] {
            assert_eq!(s.parse::<PageSize>().unwrap().to_string(), s);
        }
        assert_eq!(PageSize::SIZE_2M.bytes(), 2 * 1024 * 1024);
    }

    #[test]
    fn sysfs_names() {
        assert_eq!(PageSize::SIZE_2M.sysfs_dir_name(), "hugepages-2048kB");
        assert_eq!(
            PageSize::from_sysfs_dir_name("hugepages-1048576kB"),
            Some(PageSize::SIZE_1G)
        );
        assert_eq!(PageSize::from_sysfs_dir_name("hugepages-kB"), None);
        assert_eq!(PageSize::from_sysfs_dir_name("hugepages-0kB"), None);
        assert_eq!(PageSize::from_sysfs_dir_name("hugepages-+5kB"), None);
        assert_eq!(PageSize::from_sysfs_dir_name("nr_hugepages"), None);
    }

    #[test]
    fn serializes_as_string() {
        assert_eq!(serde_json::to_string(&PageSize::SIZE_1G).unwrap(), "\"1G\"");
    }
}
