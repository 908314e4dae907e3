//! Bounded values: names, text and collections with a named maximum size.
//!
//! Everything a peer can grow has a bound (STYLE.md, rule 7). These types enforce their bound
//! when they are built *and* when they are decoded, so a frame that claims a million-element
//! list fails with a clear error instead of allocating for it: decoding never reserves more
//! capacity than the elements it has actually read.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The longest [`Name`], in bytes.
pub const NAME_LENGTH_MAX: usize = 64;

/// A short identifier chosen by a user or a framework: a role, a principal, a task id, a
/// volume id.
///
/// 1 to [`NAME_LENGTH_MAX`] bytes of ASCII letters, digits and `-`, `_`, `.`, `/`; it does not
/// start with `-`, `.` or `/`. The restricted alphabet keeps names safe inside resource
/// strings (`cpus(ops):2`), file paths (`volumes/<role>/<id>`) and logs.
///
/// A name is shared, not copied: it is 16 bytes however long, and cloning one (as every
/// resource key, task id and role in a large cluster's state does) only counts a reference.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(Arc<str>);

impl Name {
    /// Parses a name, saying what is wrong with it if it is not one.
    pub fn new(text: &str) -> Result<Self, NameError> {
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        if text.len() > NAME_LENGTH_MAX {
            return Err(NameError::TooLong { length: text.len() });
        }
        if let Some(character) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
        {
            return Err(NameError::InvalidCharacter { character });
        }
        if text.starts_with(['-', '.', '/']) {
            return Err(NameError::InvalidStart);
        }
        Ok(Name(Arc::from(text)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Name::new(text)
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Name::new(&text)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        String::from(name.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.pad(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), formatter)
    }
}

/// Why a text is not a [`Name`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The text is empty.
    Empty,
    /// The text is longer than [`NAME_LENGTH_MAX`] bytes.
    TooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The text holds a character outside letters, digits and `-_./`.
    InvalidCharacter {
        /// The first such character.
        character: char,
    },
    /// The text starts with `-`, `.` or `/`.
    InvalidStart,
}

impl fmt::Display for NameError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(formatter, "a name cannot be empty"),
            NameError::TooLong { length } => write!(
                formatter,
                "a name is at most {NAME_LENGTH_MAX} bytes, this one is {length}"
            ),
            NameError::InvalidCharacter { character } => write!(
                formatter,
                "a name holds only letters, digits and '-', '_', '.', '/', not {character:?}"
            ),
            NameError::InvalidStart => {
                write!(formatter, "a name cannot start with '-', '.' or '/'")
            }
        }
    }
}

impl core::error::Error for NameError {}

/// Text of at most `MAX` bytes, such as a task's command line.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BoundedText<const MAX: usize>(String);

impl<const MAX: usize> BoundedText<MAX> {
    /// Copies `text`, refusing it if it is longer than `MAX` bytes.
    pub fn new(text: &str) -> Result<Self, TooLong> {
        if text.len() > MAX {
            return Err(TooLong {
                length: text.len(),
                max: MAX,
            });
        }
        Ok(BoundedText(String::from(text)))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for BoundedText<MAX> {
    type Error = TooLong;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.len() > MAX {
            return Err(TooLong {
                length: text.len(),
                max: MAX,
            });
        }
        Ok(BoundedText(text))
    }
}

impl<const MAX: usize> From<BoundedText<MAX>> for String {
    fn from(text: BoundedText<MAX>) -> String {
        text.0
    }
}

impl<const MAX: usize> fmt::Display for BoundedText<MAX> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.pad(&self.0)
    }
}

impl<const MAX: usize> fmt::Debug for BoundedText<MAX> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

/// A value or collection was longer than its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong {
    /// Its length (bytes for text, elements for collections).
    pub length: usize,
    /// The bound.
    pub max: usize,
}

impl fmt::Display for TooLong {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "length {} exceeds the maximum of {}",
            self.length, self.max
        )
    }
}

impl core::error::Error for TooLong {}

/// A list of at most `MAX` elements.
///
/// Decoding stops with an error at element `MAX + 1` (or at once, when the encoded length
/// already says so) and reserves capacity only for elements it has read.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// An empty list.
    pub const fn new() -> Self {
        BoundedVec(Vec::new())
    }

    /// Takes `elements`, refusing them if there are more than `MAX`.
    pub fn from_vec(elements: Vec<T>) -> Result<Self, TooLong> {
        if elements.len() > MAX {
            return Err(TooLong {
                length: elements.len(),
                max: MAX,
            });
        }
        Ok(BoundedVec(elements))
    }

    /// Appends `element`, or gives it back if the list is full.
    pub fn push(&mut self, element: T) -> Result<(), T> {
        if self.0.len() >= MAX {
            return Err(element);
        }
        self.0.push(element);
        Ok(())
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements, in order.
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// The elements as a plain vector.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
}

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        BoundedVec::new()
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

impl<'a, T, const MAX: usize> IntoIterator for &'a BoundedVec<T, MAX> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T, const MAX: usize> IntoIterator for BoundedVec<T, MAX> {
    type Item = T;
    type IntoIter = alloc::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T: Serialize, const MAX: usize> Serialize for BoundedVec<T, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(BoundedVecVisitor(PhantomData))
    }
}

struct BoundedVecVisitor<T, const MAX: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for BoundedVecVisitor<T, MAX> {
    type Value = BoundedVec<T, MAX>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "a list of at most {MAX} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Self::Value, A::Error> {
        if let Some(length) = sequence.size_hint()
            && length > MAX
        {
            return Err(de::Error::invalid_length(length, &self));
        }
        // No capacity is reserved up front: the encoded length is the peer's claim, the
        // elements read are the evidence.
        let mut elements = Vec::new();
        while let Some(element) = sequence.next_element()? {
            if elements.len() == MAX {
                return Err(de::Error::invalid_length(MAX + 1, &self));
            }
            elements.push(element);
        }
        Ok(BoundedVec(elements))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_accepts_roles_ids_and_paths() {
        for text in ["ops", "web-1", "a/b", "task_7.retry", "X"] {
            assert_eq!(Name::new(text).map(String::from), Ok(text.into()));
        }
    }

    #[test]
    fn name_rejects_each_bad_form() {
        assert_eq!(Name::new(""), Err(NameError::Empty));
        let long = "a".repeat(NAME_LENGTH_MAX + 1);
        assert_eq!(
            Name::new(&long),
            Err(NameError::TooLong {
                length: NAME_LENGTH_MAX + 1
            })
        );
        assert_eq!(
            Name::new("a b"),
            Err(NameError::InvalidCharacter { character: ' ' })
        );
        assert_eq!(
            Name::new("cpus(ops)"),
            Err(NameError::InvalidCharacter { character: '(' })
        );
        assert_eq!(Name::new("-x"), Err(NameError::InvalidStart));
        assert_eq!(Name::new(".."), Err(NameError::InvalidStart));
    }

    #[test]
    fn bounded_vec_refuses_more_than_its_bound() {
        let mut list = BoundedVec::<u8, 2>::new();
        assert_eq!(list.push(1), Ok(()));
        assert_eq!(list.push(2), Ok(()));
        assert_eq!(list.push(3), Err(3));
        assert_eq!(
            BoundedVec::<u8, 2>::from_vec(alloc::vec![1, 2, 3]),
            Err(TooLong { length: 3, max: 2 })
        );
    }

    #[test]
    fn bounded_vec_decoding_enforces_its_bound() {
        let encoded = postcard::to_allocvec(&alloc::vec![1u8, 2, 3]).expect("encodes");
        assert!(postcard::from_bytes::<BoundedVec<u8, 2>>(&encoded).is_err());
        assert_eq!(
            postcard::from_bytes::<BoundedVec<u8, 3>>(&encoded)
                .expect("decodes")
                .as_slice(),
            &[1, 2, 3]
        );
    }

    #[test]
    fn decoding_a_name_validates_it() {
        let encoded = postcard::to_allocvec("bad name").expect("encodes");
        assert!(postcard::from_bytes::<Name>(&encoded).is_err());
        let encoded = postcard::to_allocvec("good").expect("encodes");
        assert_eq!(
            postcard::from_bytes::<Name>(&encoded)
                .expect("decodes")
                .as_str(),
            "good"
        );
    }
}
