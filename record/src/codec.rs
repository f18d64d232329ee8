//! Field encoding inside a frame's payload: little-endian integers, length-prefixed byte strings
//! and lists. Decoding is zero-copy and bounds-checked: bad input gives an error, never a panic.

use core::fmt;

/// Why a payload could not be decoded, and where (byte offset inside the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    pub what: &'static str,
    pub at: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at payload byte {}", self.what, self.at)
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over one payload.
pub struct Dec<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Dec { data, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError { what, at: self.pos });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

/// A value that can be written into and read out of a payload.
pub trait Wire<'a>: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(d: &mut Dec<'a>) -> Result<Self, DecodeError>;
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl<'a> Wire<'a> for $t {
            #[inline]
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn get(d: &mut Dec<'a>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_le_bytes(d.array(concat!("truncated ", stringify!($t)))?))
            }
        }
    )*};
}
wire_int!(u8, u16, u32, u64, i32, i64);

impl<'a> Wire<'a> for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn get(d: &mut Dec<'a>) -> Result<Self, DecodeError> {
        match d.take(1, "truncated bool")?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError {
                what: "bad bool",
                at: d.pos() - 1,
            }),
        }
    }
}

/// Largest byte string or list a decoder accepts; a frame is smaller anyway, this only stops a
/// corrupt count from asking for a huge allocation.
pub const MAX_ITEMS: usize = 1 << 24;

/// A byte string (a path, a name): not necessarily UTF-8, shown lossily.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    pub fn lossy(&self) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.0)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lossy())
    }
}

impl<'a> Wire<'a> for Bytes<'a> {
    fn put(&self, out: &mut Vec<u8>) {
        (self.0.len() as u32).put(out);
        out.extend_from_slice(self.0);
    }
    fn get(d: &mut Dec<'a>) -> Result<Self, DecodeError> {
        let n = u32::get(d)? as usize;
        Ok(Bytes(d.take(n, "truncated byte string")?))
    }
}

/// Raw bytes shown as hex (build-ids).
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl<'a> Wire<'a> for Hex<'a> {
    fn put(&self, out: &mut Vec<u8>) {
        Bytes(self.0).put(out)
    }
    fn get(d: &mut Dec<'a>) -> Result<Self, DecodeError> {
        Ok(Hex(Bytes::get(d)?.0))
    }
}

impl<'a, T: Wire<'a>> Wire<'a> for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        (self.len() as u32).put(out);
        for x in self {
            x.put(out);
        }
    }
    fn get(d: &mut Dec<'a>) -> Result<Self, DecodeError> {
        let at = d.pos();
        let n = u32::get(d)? as usize;
        // Every item takes at least one byte: a count beyond what is left is corrupt.
        if n > MAX_ITEMS || n > d.remaining() {
            return Err(DecodeError {
                what: "list count exceeds payload",
                at,
            });
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::get(d)?);
        }
        Ok(v)
    }
}

/// Declares a record struct whose fields are encoded in declaration order. New fields are only
/// ever appended, so an old reader decodes a newer payload by ignoring what follows.
#[macro_export]
macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident<$lt:lifetime> { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        pub struct $name<$lt> { $($(#[$fm])* pub $f: $t),* }
        impl<$lt> $crate::codec::Wire<$lt> for $name<$lt> {
            fn put(&self, out: &mut Vec<u8>) { $( $crate::codec::Wire::put(&self.$f, out); )* }
            fn get(d: &mut $crate::codec::Dec<$lt>) -> Result<Self, $crate::codec::DecodeError> {
                Ok($name { $($f: $crate::codec::Wire::get(d)?),* })
            }
        }
    };
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
        impl<'a> $crate::codec::Wire<'a> for $name {
            fn put(&self, out: &mut Vec<u8>) { $( $crate::codec::Wire::put(&self.$f, out); )* }
            fn get(d: &mut $crate::codec::Dec<'a>) -> Result<Self, $crate::codec::DecodeError> {
                Ok($name { $($f: $crate::codec::Wire::get(d)?),* })
            }
        }
    };
}

#[cfg(feature = "serde")]
mod serde_impls {
    use super::*;
    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&self.lossy())
        }
    }
    impl serde::Serialize for Hex<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let mut out = Vec::new();
        7u64.put(&mut out);
        Bytes(b"/lib/x").put(&mut out);
        vec![1u32, 2, 3].put(&mut out);
        let mut d = Dec::new(&out);
        assert_eq!(u64::get(&mut d).unwrap(), 7);
        assert_eq!(Bytes::get(&mut d).unwrap().0, b"/lib/x");
        assert_eq!(Vec::<u32>::get(&mut d).unwrap(), vec![1, 2, 3]);
        assert_eq!(d.remaining(), 0);
        // Every truncation point is an error, not a panic.
        for cut in 0..out.len() {
            let mut d = Dec::new(&out[..cut]);
            let r = (|| -> Result<(), DecodeError> {
                u64::get(&mut d)?;
                Bytes::get(&mut d)?;
                Vec::<u32>::get(&mut d)?;
                Ok(())
            })();
            assert!(r.is_err(), "cut at {cut} decoded");
        }
        // A huge list count is refused before allocating.
        let mut bad = Vec::new();
        u32::MAX.put(&mut bad);
        assert!(Vec::<u64>::get(&mut Dec::new(&bad)).is_err());
    }
}
