//! A short copy of a name for error messages, without an allocator.

use core::fmt;

/// The first [`Short::CAPACITY`] bytes of a string (cut at a character boundary, marked with
/// `...` when cut), kept so that an error can quote what it refused.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Short {
    bytes: [u8; Short::CAPACITY],
    len: u8,
    cut: bool,
}

impl Short {
    pub const CAPACITY: usize = 64;

    pub fn new(s: &str) -> Short {
        let mut len = s.len().min(Short::CAPACITY);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; Short::CAPACITY];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Short {
            bytes,
            len: len as u8,
            cut: len < s.len(),
        }
    }

    /// The first [`Short::CAPACITY`] bytes of what `value` displays as.
    pub fn from_display(value: &dyn fmt::Display) -> Short {
        struct Writer(Short);
        impl fmt::Write for Writer {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    let mut buf = [0; 4];
                    let c = c.encode_utf8(&mut buf).as_bytes();
                    let taken = usize::from(self.0.len);
                    if taken + c.len() > Short::CAPACITY {
                        self.0.cut = true;
                        break;
                    }
                    self.0.bytes[taken..taken + c.len()].copy_from_slice(c);
                    self.0.len += c.len() as u8;
                }
                Ok(())
            }
        }
        let mut w = Writer(Short::new(""));
        let _ = fmt::write(&mut w, format_args!("{value}"));
        w.0
    }

    pub fn as_str(&self) -> &str {
        // Cut at a character boundary of a str, so still UTF-8.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn keeps_short_names_and_cuts_long_ones_at_a_character() {
        assert_eq!(Short::new("intel").to_string(), "intel");
        let long = "é".repeat(40);
        let short = Short::new(&long);
        assert_eq!(short.as_str(), "é".repeat(32));
        assert!(short.to_string().ends_with("..."));
    }
}
