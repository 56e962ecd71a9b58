//! Text laid out for a terminal: the width a string takes on screen, and lines wrapped
//! to a width as English and Chinese typesetting want.

use unicode_width::UnicodeWidthChar;

/// Split `text` into lines of at most `room` columns (colour sequences take no room,
/// Chinese characters take two and may break anywhere, but as Chinese typesetting wants:
/// no line starts with a closing mark such as `，` `。` `）` and none ends with an opening
/// one such as `（` `“`; the character before is carried down with it instead). Lines
/// break between words only: an inline `code` span, and a number with its unit
/// (`250 ms`, `8 个`), stay whole while they fit; a word longer than a line breaks after
/// a mark (`/`, `.`, `_`, `(`…), or, having none, where the line ends.
pub fn wrap(text: &str, room: usize) -> Vec<String> {
    const NO_START: &str = "，。、；：？！）》」』”’…%,.;:?!)]}";
    const NO_END: &str = "（《「『“‘([{";
    let starts_bad = |w: &str| w.chars().next().is_some_and(|c| NO_START.contains(c));
    let ends_bad = |w: &str| w.chars().last().is_some_and(|c| NO_END.contains(c));
    let mut lines = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut cur_w = 0;
    let room = room.max(1);
    let words: Vec<String> = split_words(text)
        .into_iter()
        .flat_map(|w| fitted(w, room))
        .collect();
    for word in words {
        let w = visible_width(&word);
        if cur_w + w > room && !cur.is_empty() {
            // Carry the tail down while the break would fall in a forbidden place,
            // keeping at least one piece on the line.
            let mut carried: Vec<String> = Vec::new();
            let mut next = word.clone();
            while cur.len() > 1 {
                let last = cur.last().map(String::as_str).unwrap_or("");
                if (starts_bad(&next) && last != " ") || ends_bad(last) {
                    let piece = cur.pop().unwrap_or_default();
                    next = piece.clone();
                    carried.insert(0, piece);
                } else {
                    break;
                }
            }
            lines.push(cur.concat().trim_end().to_string());
            cur = carried;
            cur_w = cur.iter().map(|p| visible_width(p)).sum();
            if word == " " && cur.is_empty() {
                continue;
            }
        }
        cur.push(word);
        cur_w += w;
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur.concat().trim_end().to_string());
    }
    lines
}

/// The width of `s` on screen: ANSI colour sequences take no room.
pub fn visible_width(s: &str) -> usize {
    let mut w = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            w += c.width().unwrap_or(0);
        }
    }
    w
}

/// A piece wider than `room`: a span (`code`, a number and its unit) falls apart into
/// its words again; a word into parts that fit, each ending in a mark if it can.
fn fitted(piece: String, room: usize) -> Vec<String> {
    if visible_width(&piece) <= room {
        return vec![piece];
    }
    if piece.contains(' ') {
        let mut out = Vec::new();
        for (i, word) in piece.split(' ').enumerate() {
            if i > 0 {
                out.push(" ".to_string());
            }
            if !word.is_empty() {
                out.extend(fitted(word.to_string(), room));
            }
        }
        return out;
    }
    const MARKS: &str = "/._-(,=:;[{";
    let mut out = Vec::new();
    let mut cur = String::new();
    // The end of `cur` after its last mark, and how wide `cur` is.
    let (mut after_mark, mut w) = (None, 0);
    let mut chars = piece.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // A colour sequence: whole, and no room taken.
            cur.push(c);
            for c in chars.by_ref() {
                cur.push(c);
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        let cw = c.width().unwrap_or(0);
        if w + cw > room && !cur.is_empty() {
            let cut = after_mark.unwrap_or(cur.len());
            let rest = cur.split_off(cut);
            out.push(std::mem::replace(&mut cur, rest));
            w = visible_width(&cur);
            after_mark = None;
        }
        cur.push(c);
        w += cw;
        if MARKS.contains(c) {
            after_mark = Some(cur.len());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Words and single CJK characters, with spaces kept as their own pieces; an inline
/// `code` span, and a number with its unit, are one piece.
fn split_words(text: &str) -> Vec<String> {
    glue_units(split_plain(text))
}

/// Units a number is not parted from.
const UNITS: &[&str] = &[
    "ms", "s", "µs", "ns", "B", "KB", "kB", "KiB", "MB", "MiB", "GB", "GiB", "bytes", "byte", "%",
];

/// `250` `ms` → `250 ms`; `8` `个` → `8 个` (a Chinese measure word or unit follows its
/// number, with or without a space).
fn glue_units(pieces: Vec<String>) -> Vec<String> {
    let ends_in_digit = |p: &str| p.chars().last().is_some_and(|c| c.is_ascii_digit());
    let is_unit = |p: &str| {
        let bare = p.trim_end_matches(|c: char| ",.;:)".contains(c));
        UNITS.contains(&bare)
            || p.chars()
                .next()
                .is_some_and(|c| c.width() == Some(2) && !is_mark(c))
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        let p = &pieces[i];
        if ends_in_digit(p) {
            if pieces.get(i + 1).is_some_and(|s| s == " ")
                && pieces.get(i + 2).is_some_and(|u| is_unit(u))
            {
                out.push(format!("{p} {}", pieces[i + 2]));
                i += 3;
                continue;
            }
            if pieces.get(i + 1).is_some_and(|u| u != " " && is_unit(u)) {
                out.push(format!("{p}{}", pieces[i + 1]));
                i += 2;
                continue;
            }
        }
        out.push(p.clone());
        i += 1;
    }
    out
}

/// A Chinese punctuation mark (not a character that may be a unit).
fn is_mark(c: char) -> bool {
    "，。、；：？！（）《》「」『』“”‘’…—".contains(c)
}

/// Words and single CJK characters, spaces as their own pieces, a `code` span whole.
fn split_plain(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_code = false;
    for c in text.chars() {
        if c == '`' {
            if !in_code
                && !cur.is_empty()
                && cur.chars().last().is_some_and(|l| l.width() == Some(2))
            {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
            in_code = !in_code;
        } else if in_code {
            cur.push(c);
        } else if c == ' ' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(" ".into());
        } else if c.width().unwrap_or(0) == 2 {
            // A wide character may break anywhere.
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_fits_and_keeps_chinese_punctuation_off_the_line_start() {
        let text =
            "它一个接一个地放入自己的数据项。每次调用都先拿走一个槽位（信号量减一），然后写入。";
        for room in 20..40 {
            let lines = wrap(text, room);
            assert_eq!(lines.concat(), text, "nothing lost or added at {room}");
            for (i, l) in lines.iter().enumerate() {
                assert!(visible_width(l) <= room, "{l:?} fits {room}");
                let first = l.chars().next().unwrap();
                assert!(
                    !"，。）".contains(first),
                    "line {i} at {room} starts with {first}"
                );
                let last = l.chars().last().unwrap();
                assert!(last != '（', "line {i} at {room} ends with （");
            }
        }
        assert_eq!(wrap("a b c", 3), vec!["a b", "c"]);
    }

    #[test]
    fn code_spans_numbers_with_units_and_long_words_stay_readable() {
        // `code` stays whole while it fits; a number keeps its unit.
        for room in 16..24 {
            let lines = wrap("run `ps -o pid,stat` now, it waits 250 ms here", room);
            assert!(
                lines.iter().any(|l| l.contains("`ps -o pid,stat`")),
                "{lines:?}"
            );
            assert!(lines.iter().any(|l| l.contains("250 ms")), "{lines:?}");
        }
        // Wider than the line, the span falls apart at its spaces.
        let narrow = wrap("run `ps -o pid,stat` now", 10);
        assert_eq!(narrow, vec!["run `ps -o", "pid,stat`", "now"]);
        let zh = wrap("每个买家等待 250 毫秒，然后写入 8 个字节。", 12);
        assert!(zh.iter().any(|l| l.contains("250 毫")), "{zh:?}");
        assert!(zh.iter().any(|l| l.contains("8 个")), "{zh:?}");
        // A word wider than the line breaks after a mark, and every piece fits.
        let long = wrap("see /tmp/mp-demo-abc/value.shm here", 16);
        for l in &long {
            assert!(visible_width(l) <= 16, "{long:?}");
        }
        assert_eq!(
            long.concat().replace(' ', ""),
            "see/tmp/mp-demo-abc/value.shmhere"
        );
        assert!(
            long.iter().any(|l| l.ends_with('/') || l.ends_with('-')),
            "{long:?}"
        );
    }
}
