//! Every place one byte occurs in a buffer, found 64 bytes at a time: a
//! batch of short lines is cut with one pass over the buffer, where a
//! search started again for each line (`memchr`) costs more to set up than
//! a 32-byte line takes to scan. Past a whole block with none, `memchr`
//! finds the next one, so a long line is scanned as fast as `memchr` scans.

/// Bytes looked at together: one bit each in a `u64`.
const BLOCK: usize = 64;

/// The positions of `byte` in a buffer, in order, from a given offset.
pub struct Occurrences<'h> {
    haystack: &'h [u8],
    byte: u8,
    /// Where the block `mask` describes starts in `haystack`.
    block: usize,
    /// One bit per position in the block holding `byte` not yet returned.
    mask: u64,
}

impl<'h> Occurrences<'h> {
    /// The positions of `byte` in `haystack`, from `from` on.
    #[inline(always)]
    pub fn new(haystack: &'h [u8], byte: u8, from: usize) -> Self {
        let rest = haystack.get(from..).unwrap_or_default();
        Self {
            haystack,
            byte,
            block: from,
            mask: block_mask(rest, byte),
        }
    }
}

impl Iterator for Occurrences<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.mask == 0 {
            self.block += BLOCK;
            let rest = self.haystack.get(self.block..)?;
            self.mask = block_mask(rest, self.byte);
            if self.mask == 0 {
                // A whole block without one: memchr finds the next, fast
                // over a long stretch, and the next block starts there.
                self.block += BLOCK + memchr::memchr(self.byte, rest.get(BLOCK..)?)?;
                self.mask = block_mask(&self.haystack[self.block..], self.byte);
            }
        }
        let at = self.block + self.mask.trailing_zeros() as usize;
        // Clears the lowest bit set: the position just returned.
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// Bit `i` set where `bytes[i]` is `byte`, for the first [`BLOCK`] bytes.
#[inline(always)]
fn block_mask(bytes: &[u8], byte: u8) -> u64 {
    match bytes.first_chunk::<BLOCK>() {
        Some(block) => matches(block, byte),
        None => {
            // The end of the buffer, padded with a byte that is not `byte`.
            let mut padded = [!byte; BLOCK];
            padded[..bytes.len()].copy_from_slice(bytes);
            matches(&padded, byte)
        }
    }
}

/// Bit `i` set where `block[i]` is `byte`: four 16-byte comparisons.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn matches(block: &[u8; BLOCK], byte: u8) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let mut mask = 0;
    for (i, quarter) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of every x86_64 processor, so these
        // instructions exist; the load reads the 16 bytes of `quarter`, and
        // an unaligned load needs no alignment.
        let bits = unsafe {
            let bytes = _mm_loadu_si128(quarter.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte as i8)))
        };
        // The movemask's 16 bits, as an unsigned value.
        mask |= u64::from(bits as u16) << (16 * i);
    }
    mask
}

/// Bit `i` set where `block[i]` is `byte`, one byte at a time.
#[cfg(any(not(target_arch = "x86_64"), test))]
fn matches_bytewise(block: &[u8; BLOCK], byte: u8) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0, |mask, (i, &b)| mask | (u64::from(b == byte) << i))
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn matches(block: &[u8; BLOCK], byte: u8) -> u64 {
    matches_bytewise(block, byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A few distinct bytes, so that matches are frequent.
    fn haystack() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(b'\n'), Just(0xff), any::<u8>()],
            0..300,
        )
    }

    proptest! {
        #[test]
        fn finds_every_occurrence_in_order(
            haystack in haystack(),
            byte in prop_oneof![Just(0u8), Just(b'\n'), Just(0xff), any::<u8>()],
            from in 0usize..310,
        ) {
            let from = from.min(haystack.len());
            let expected: Vec<usize> = (from..haystack.len())
                .filter(|&i| haystack[i] == byte)
                .collect();
            let found: Vec<usize> = Occurrences::new(&haystack, byte, from).collect();
            prop_assert_eq!(found, expected);
        }

        #[test]
        fn block_masks_agree_with_a_byte_at_a_time(
            block in proptest::array::uniform32(prop_oneof![Just(b'\n'), any::<u8>()]),
            block2 in proptest::array::uniform32(prop_oneof![Just(b'\n'), any::<u8>()]),
            byte in prop_oneof![Just(b'\n'), any::<u8>()],
        ) {
            let mut whole = [0; BLOCK];
            whole[..32].copy_from_slice(&block);
            whole[32..].copy_from_slice(&block2);
            prop_assert_eq!(matches(&whole, byte), matches_bytewise(&whole, byte));
        }
    }

    #[test]
    fn one_occurrence_is_found_wherever_it_is_and_wherever_the_search_starts() {
        let mut haystack = [b'x'; 300];
        for at in 0..haystack.len() {
            haystack[at] = b'\n';
            for from in 0..140 {
                let found: Vec<usize> = Occurrences::new(&haystack, b'\n', from).collect();
                let expected: &[usize] = if at >= from { &[at] } else { &[] };
                assert_eq!(found, expected, "at {at}, from {from}");
            }
            haystack[at] = b'x';
        }
    }

    #[test]
    fn the_padding_of_the_last_block_is_never_found() {
        for byte in [0, b'\n', 0xff] {
            let haystack = [byte; 3];
            let found: Vec<usize> = Occurrences::new(&haystack, byte, 0).collect();
            assert_eq!(found, [0, 1, 2]);
        }
    }
}
