//! "Did you mean" suggestions: the word valid at a position closest to a
//! misspelt one, by edit distance with transpositions (`acept` → `accept`,
//! `dprot` → `dport`, `fliter` → `filter`).

/// The candidate closest to `word`, if it is a plausible misspelling of
/// it: at most one edit for words of up to four characters, two up to
/// eight, three beyond. Ties go to the earlier candidate.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w: Vec<char> = word.to_ascii_lowercase().chars().collect();
    if w.is_empty() || w.len() > 64 {
        return None;
    }
    let limit = match w.len() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let d = distance(&w, c);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions,
/// substitutions and swaps of neighbours each cost one.
fn distance(a: &[char], b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 3 {
        return usize::MAX;
    }
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (j, x) in d.iter_mut().enumerate().take(width) {
        *x = j;
    }
    for i in 1..=a.len() {
        d[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn near_misses_find_the_word_and_strangers_find_none() {
        let verdicts = ["accept", "drop", "continue", "return", "jump", "goto"];
        assert_eq!(closest("acept", verdicts), Some("accept"));
        assert_eq!(closest("ACCEPT", verdicts), Some("accept"));
        assert_eq!(closest("dorp", verdicts), Some("drop"));
        assert_eq!(closest("dprot", ["sport", "dport"]), Some("dport"));
        assert_eq!(
            closest("estabished", ["new", "established", "related"]),
            Some("established")
        );
        assert_eq!(closest("masquerade", verdicts), None);
        assert_eq!(closest("x", verdicts), None);
        assert_eq!(closest("", verdicts), None);
    }
}
