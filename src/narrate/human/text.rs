//! Text laid out for a terminal: the width a string takes on screen, and lines wrapped
//! to a width as English and Chinese typesetting want.

use unicode_width::UnicodeWidthChar;

/// Split `text` into lines of at most `room` columns (colour sequences take no room,
/// Chinese characters take two and may break anywhere, but as Chinese typesetting wants:
/// no line starts with a closing mark such as `，` `。` `）` and none ends with an opening
/// one such as `（` `“`; the character before is carried down with it instead).
pub fn wrap(text: &str, room: usize) -> Vec<String> {
    const NO_START: &str = "，。、；：？！）》」』”’…%,.;:?!)]}";
    const NO_END: &str = "（《「『“‘([{";
    let starts_bad = |w: &str| w.chars().next().is_some_and(|c| NO_START.contains(c));
    let ends_bad = |w: &str| w.chars().last().is_some_and(|c| NO_END.contains(c));
    let mut lines = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut cur_w = 0;
    for word in split_words(text) {
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

/// Words and single CJK characters, with spaces kept as their own pieces.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == ' ' {
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
}
