//! The two Unicode facts Go's module rules depend on, exactly as Go's
//! `unicode` package has them: which runes are letters (`unicode.IsLetter`,
//! allowed in file names) and which runes are equal under simple case
//! folding (`strings.EqualFold`, used for Windows names and for file name
//! collisions). Rust's `char::is_alphabetic` and `to_lowercase` answer other
//! questions (U+2160 is alphabetic but not a letter; `to_lowercase` does not
//! fold `ſ` with `s`), so the tables are generated from Go itself
//! (`tools/unicodegen`, checked by tests/go_rules.rs).
//!
//! Owns: nothing but lookups in the generated tables.

use super::unicode_tables::{FOLD, LETTER};

pub use super::unicode_tables::UNICODE_VERSION;

/// Go's `unicode.IsLetter`.
pub fn is_letter(c: char) -> bool {
    let c = c as u32;
    LETTER
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The smallest rune of `c`'s `unicode.SimpleFold` orbit.
fn fold_min(c: char) -> char {
    match FOLD.binary_search_by_key(&(c as u32), |&(r, _)| r) {
        Ok(i) => char::from_u32(FOLD[i].1).expect("generated table holds valid runes"),
        Err(_) => c,
    }
}

/// x/mod's `strToFold`: a string that is equal for two inputs exactly when
/// `strings.EqualFold` says they are equal.
pub fn str_to_fold(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return s.to_string();
    }
    s.chars()
        .map(|c| fold_min(c).to_ascii_lowercase())
        .collect()
}

/// Go's `strings.EqualFold` on valid UTF-8.
pub fn equal_fold(a: &str, b: &str) -> bool {
    a.chars().count() == b.chars().count()
        && a.chars()
            .zip(b.chars())
            .all(|(x, y)| fold_min(x) == fold_min(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_go_letters() {
        for c in [
            'a', 'Z', 'ß', 'ſ', 'Σ', 'İ', 'ı', 'Ａ', 'ｚ', 'あ', '中', 'ǅ', 'ʰ', 'ℵ',
        ] {
            assert!(is_letter(c), "{c:?}");
        }
        // Letter numbers (Nl) and marks are not letters in Go, though Rust
        // calls some of them alphabetic.
        for c in [
            '\u{2160}', '\u{3007}', '\u{0301}', '\u{0345}', '1', '٣', '_', ' ',
        ] {
            assert!(!is_letter(c), "{c:?}");
        }
        assert!('\u{2160}'.is_alphabetic() && '\u{0345}'.is_alphabetic());
    }

    #[test]
    fn folds_like_equal_fold() {
        assert!(equal_fold("s", "ſ"));
        assert!(equal_fold("k", "\u{212a}"));
        assert!(equal_fold("K", "\u{212a}"));
        assert!(equal_fold("σ", "ς"));
        assert!(equal_fold("Σ", "ς"));
        assert!(!equal_fold("ß", "ss"));
        assert!(!equal_fold("İ", "i"));
        assert!(!equal_fold("ı", "i"));
        assert_eq!(str_to_fold("ReadMe.ſ"), "readme.s");
        assert_eq!(str_to_fold("\u{212a}"), "k");
        assert_eq!(str_to_fold("readme"), "readme");
    }
}
