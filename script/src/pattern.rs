//! Lua 5.4 patterns, matched with a step count.
//!
//! Stock Lua matches patterns by backtracking in C, where the instruction hook never runs:
//! `string.find(("a"):rep(300), ".-.-.-b")` takes seconds inside one call. This matcher has
//! the same semantics (classes, sets, `%b`, `%f`, back-references, position captures,
//! anchors, the 200-level recursion limit and the 32-capture limit, and the same error
//! messages) but charges every step to a [`Fuel`] and stops as soon as the fuel says so.
//! It knows nothing about Lua values; `strlib` turns its results into Lua values.

/// How many steps may still be taken; charged in batches by the matcher.
pub(crate) trait Fuel {
    /// Charges `steps`; `false` means the budget is spent and matching must stop.
    fn burn(&mut self, steps: u64) -> bool;
}

/// Steps are handed to the [`Fuel`] in batches of this size: small enough that a spent
/// budget is noticed within microseconds, large enough that the charge costs nothing.
const BATCH: u64 = 1024;

/// Most captures one pattern may open (Lua's `LUA_MAXCAPTURES`).
const MAX_CAPTURES: usize = 32;
/// Deepest matcher recursion (Lua's `MAXCCALLS` for patterns).
const MAX_DEPTH: usize = 200;

const ESC: u8 = b'%';
/// Bytes that make a `string.find` pattern need the matcher rather than a plain search.
const SPECIALS: &[u8] = b"^$*+?.([%-";

/// Why matching stopped without an answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The pattern is malformed or asked for something impossible; Lua's message.
    Error(String),
    /// The fuel ran out.
    Spent,
}

/// One capture after a successful match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capture {
    /// The bytes `start..end` of the subject.
    Text(usize, usize),
    /// `()`: the 1-based position.
    Position(usize),
}

#[derive(Clone, Copy)]
enum Len {
    Open,
    Position,
    Closed(usize),
}

/// Matching state over one subject and one pattern (without a leading `^`).
pub(crate) struct Matcher<'a, F: Fuel> {
    src: &'a [u8],
    pat: &'a [u8],
    depth: usize,
    level: usize,
    caps: [(usize, Len); MAX_CAPTURES],
    unburnt: u64,
    fuel: F,
}

type Step = Result<Option<usize>, Stop>;

fn err<T>(message: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Error(message.into()))
}

/// `true` when `pat` has no byte that is special to the matcher.
pub(crate) fn is_plain(pat: &[u8]) -> bool {
    !pat.iter().any(|b| SPECIALS.contains(b))
}

/// Lua's `isspace` in the C locale includes `\v`, which `u8::is_ascii_whitespace` does not.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn class_matches(c: u8, class: u8) -> bool {
    let hit = match class.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => is_space(c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        _ => return class == c,
    };
    if class.is_ascii_uppercase() {
        !hit
    } else {
        hit
    }
}

impl<'a, F: Fuel> Matcher<'a, F> {
    pub(crate) fn new(src: &'a [u8], pat: &'a [u8], fuel: F) -> Self {
        Matcher {
            src,
            pat,
            depth: MAX_DEPTH,
            level: 0,
            caps: [(0, Len::Open); MAX_CAPTURES],
            unburnt: 0,
            fuel,
        }
    }

    /// Hands the steps not yet charged to the fuel; `Err(Spent)` when it is gone.
    pub(crate) fn settle(&mut self) -> Result<(), Stop> {
        let steps = std::mem::take(&mut self.unburnt);
        if steps > 0 && !self.fuel.burn(steps) {
            return Err(Stop::Spent);
        }
        Ok(())
    }

    fn step(&mut self, n: u64) -> Result<(), Stop> {
        self.unburnt += n;
        if self.unburnt >= BATCH {
            self.settle()?;
        }
        Ok(())
    }

    /// The pattern byte at `p`, or 0 past the end (C Lua reads the terminating NUL there).
    fn pb(&self, p: usize) -> u8 {
        self.pat.get(p).copied().unwrap_or(0)
    }

    /// Tries to match the whole pattern at `s`; `Some(end)` on success. Captures are reset.
    pub(crate) fn match_at(&mut self, s: usize) -> Step {
        self.level = 0;
        self.depth = MAX_DEPTH;
        self.do_match(s, 0)
    }

    /// Number of captures the last successful match produced (0: the whole match).
    pub(crate) fn capture_count(&self) -> usize {
        self.level
    }

    /// Capture `i` of the last match at `s..e` (`i == 0` with no captures: the whole match).
    pub(crate) fn capture(&self, i: usize, s: usize, e: usize) -> Result<Capture, Stop> {
        if i >= self.level {
            if i != 0 {
                return err(format!("invalid capture index %{}", i + 1));
            }
            return Ok(Capture::Text(s, e));
        }
        match self.caps[i] {
            (_, Len::Open) => err("unfinished capture"),
            (start, Len::Position) => Ok(Capture::Position(start + 1)),
            (start, Len::Closed(len)) => Ok(Capture::Text(start, start + len)),
        }
    }

    /// Every capture of the last match at `s..e`, as Lua returns them (the whole match when
    /// the pattern has none).
    pub(crate) fn captures(&self, s: usize, e: usize) -> Result<Vec<Capture>, Stop> {
        let n = self.level.max(1);
        (0..n).map(|i| self.capture(i, s, e)).collect()
    }

    fn class_end(&self, mut p: usize) -> Result<usize, Stop> {
        let c = self.pb(p);
        p += 1;
        if c == ESC {
            if p >= self.pat.len() {
                return err("malformed pattern (ends with '%')");
            }
            return Ok(p + 1);
        }
        if c == b'[' {
            if self.pb(p) == b'^' {
                p += 1;
            }
            // The first byte of a set is taken literally, so `[]]` is a set holding `]`.
            loop {
                if p >= self.pat.len() {
                    return err("malformed pattern (missing ']')");
                }
                let c = self.pat[p];
                p += 1;
                if c == ESC && p < self.pat.len() {
                    p += 1;
                }
                if self.pb(p) == b']' {
                    break;
                }
            }
            return Ok(p + 1);
        }
        Ok(p)
    }

    /// Does `c` belong to the set `[...]` spanning `p..=ec` (`ec` at the closing `]`)?
    fn in_set(&self, c: u8, mut p: usize, ec: usize) -> bool {
        let mut found = true;
        if self.pb(p + 1) == b'^' {
            found = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                break;
            }
            let pc = self.pat[p];
            if pc == ESC {
                p += 1;
                if class_matches(c, self.pb(p)) {
                    return found;
                }
            } else if self.pb(p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if pc <= c && c <= self.pat[p] {
                    return found;
                }
            } else if pc == c {
                return found;
            }
        }
        !found
    }

    fn single(&self, s: usize, p: usize, ep: usize) -> bool {
        let Some(&c) = self.src.get(s) else {
            return false;
        };
        match self.pat[p] {
            b'.' => true,
            ESC => class_matches(c, self.pb(p + 1)),
            b'[' => self.in_set(c, p, ep - 1),
            pc => pc == c,
        }
    }

    fn do_match(&mut self, s: usize, p: usize) -> Step {
        if self.depth == 0 {
            return err("pattern too complex");
        }
        self.depth -= 1;
        let result = self.match_loop(s, p);
        self.depth += 1;
        result
    }

    fn match_loop(&mut self, mut s: usize, mut p: usize) -> Step {
        loop {
            self.step(1)?;
            if p == self.pat.len() {
                return Ok(Some(s));
            }
            match self.pat[p] {
                b'(' => {
                    return if self.pb(p + 1) == b')' {
                        self.start_capture(s, p + 2, Len::Position)
                    } else {
                        self.start_capture(s, p + 1, Len::Open)
                    };
                }
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                ESC if self.pb(p + 1) == b'b' => match self.balance(s, p + 2)? {
                    Some(next) => {
                        s = next;
                        p += 4;
                        continue;
                    }
                    None => return Ok(None),
                },
                ESC if self.pb(p + 1) == b'f' => {
                    p += 2;
                    if self.pb(p) != b'[' {
                        return err("missing '[' after '%f' in pattern");
                    }
                    let ep = self.class_end(p)?;
                    let prev = if s == 0 { 0 } else { self.src[s - 1] };
                    let cur = self.src.get(s).copied().unwrap_or(0);
                    if !self.in_set(prev, p, ep - 1) && self.in_set(cur, p, ep - 1) {
                        p = ep;
                        continue;
                    }
                    return Ok(None);
                }
                ESC if self.pb(p + 1).is_ascii_digit() => {
                    match self.back_reference(s, self.pb(p + 1))? {
                        Some(next) => {
                            s = next;
                            p += 2;
                            continue;
                        }
                        None => return Ok(None),
                    }
                }
                _ => {}
            }
            let ep = self.class_end(p)?;
            let op = self.pb(ep);
            if !self.single(s, p, ep) {
                if matches!(op, b'*' | b'?' | b'-') {
                    p = ep + 1;
                    continue;
                }
                return Ok(None);
            }
            match op {
                b'?' => {
                    if let Some(end) = self.do_match(s + 1, ep + 1)? {
                        return Ok(Some(end));
                    }
                    p = ep + 1;
                }
                b'+' => return self.max_expand(s + 1, p, ep),
                b'*' => return self.max_expand(s, p, ep),
                b'-' => return self.min_expand(s, p, ep),
                _ => {
                    s += 1;
                    p = ep;
                }
            }
        }
    }

    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Step {
        let mut i = 0;
        while self.single(s + i, p, ep) {
            self.step(1)?;
            i += 1;
        }
        loop {
            if let Some(end) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(end));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> Step {
        loop {
            if let Some(end) = self.do_match(s, ep + 1)? {
                return Ok(Some(end));
            }
            if !self.single(s, p, ep) {
                return Ok(None);
            }
            s += 1;
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, len: Len) -> Step {
        if self.level >= MAX_CAPTURES {
            return err("too many captures");
        }
        self.caps[self.level] = (s, len);
        self.level += 1;
        let result = self.do_match(s, p)?;
        if result.is_none() {
            self.level -= 1;
        }
        Ok(result)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Step {
        let Some(l) = (0..self.level)
            .rev()
            .find(|&l| matches!(self.caps[l].1, Len::Open))
        else {
            return err("invalid pattern capture");
        };
        self.caps[l].1 = Len::Closed(s - self.caps[l].0);
        let result = self.do_match(s, p)?;
        if result.is_none() {
            self.caps[l].1 = Len::Open;
        }
        Ok(result)
    }

    fn balance(&mut self, s: usize, p: usize) -> Step {
        if p + 1 >= self.pat.len() {
            return err("malformed pattern (missing arguments to '%b')");
        }
        let (open, close) = (self.pat[p], self.pat[p + 1]);
        if self.src.get(s) != Some(&open) {
            return Ok(None);
        }
        let mut depth = 1u64;
        let mut i = s + 1;
        while i < self.src.len() {
            self.step(1)?;
            let c = self.src[i];
            if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(i + 1));
                }
            } else if c == open {
                depth += 1;
            }
            i += 1;
        }
        Ok(None)
    }

    fn back_reference(&mut self, s: usize, digit: u8) -> Step {
        let l = usize::from(digit).wrapping_sub(usize::from(b'1'));
        let len = match self.caps.get(l) {
            Some((_, Len::Closed(len))) if l < self.level => *len,
            // C Lua compares a position capture as a length of `(size_t)-2`: never a match.
            Some((_, Len::Position)) if l < self.level => return Ok(None),
            _ => return err(format!("invalid capture index %{}", l.wrapping_add(1))),
        };
        let start = self.caps[l].0;
        self.step(len as u64 / 16 + 1)?;
        if self.src.len() - s >= len && self.src[start..start + len] == self.src[s..s + len] {
            Ok(Some(s + len))
        } else {
            Ok(None)
        }
    }

    /// From `from` on, the first position where the pattern matches with an end other than
    /// `last` (how `gmatch` and `gsub` step over empty matches); only at `from` when
    /// `anchor`. `Some((start, end))`.
    pub(crate) fn next_match(
        &mut self,
        from: usize,
        last: Option<usize>,
        anchor: bool,
    ) -> Result<Option<(usize, usize)>, Stop> {
        let mut s = from;
        while s <= self.src.len() {
            if let Some(e) = self.match_at(s)? {
                if Some(e) != last {
                    return Ok(Some((s, e)));
                }
            }
            if anchor {
                break;
            }
            s += 1;
        }
        Ok(None)
    }

    /// A plain substring search from `from`, charged like matching.
    pub(crate) fn find_plain(&mut self, from: usize) -> Result<Option<usize>, Stop> {
        let (src, pat) = (self.src, self.pat);
        if pat.is_empty() {
            return Ok(Some(from));
        }
        if pat.len() > src.len() - from {
            return Ok(None);
        }
        let last_start = src.len() - pat.len();
        let mut s = from;
        while s <= last_start {
            let Some(offset) = src[s..=last_start].iter().position(|&b| b == pat[0]) else {
                self.step(((last_start - s) / 16) as u64 + 1)?;
                return Ok(None);
            };
            s += offset;
            self.step((offset / 16) as u64 + (pat.len() / 16) as u64 + 1)?;
            if src[s..s + pat.len()] == *pat {
                return Ok(Some(s));
            }
            s += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tank(u64);

    impl Fuel for &mut Tank {
        fn burn(&mut self, steps: u64) -> bool {
            self.0 = self.0.saturating_sub(steps);
            self.0 > 0
        }
    }

    fn find(src: &str, pat: &str) -> Result<Option<(usize, usize)>, Stop> {
        let mut tank = Tank(u64::MAX);
        let mut m = Matcher::new(src.as_bytes(), pat.as_bytes(), &mut tank);
        m.next_match(0, None, false)
    }

    #[test]
    fn basics() {
        assert_eq!(find("hello world", "o w"), Ok(Some((4, 7))));
        assert_eq!(find("hello", "l+"), Ok(Some((2, 4))));
        assert_eq!(find("THE (quick) fox", "%((%a+)%)"), Ok(Some((4, 11))));
        assert_eq!(
            find("x", "[a"),
            Err(Stop::Error("malformed pattern (missing ']')".into()))
        );
    }

    #[test]
    fn backtracking_is_charged_and_stops() {
        let src = "a".repeat(300);
        let mut tank = Tank(1_000_000);
        let mut m = Matcher::new(src.as_bytes(), b".-.-.-b", &mut tank);
        assert_eq!(m.next_match(0, None, false), Err(Stop::Spent));
    }
}
