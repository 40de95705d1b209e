//! "Did you mean": the nearest valid name to a mistyped one (a loss id, a parameter, an
//! input, a corpus case id), by the Damerau–Levenshtein distance of [`strsim`], offered
//! only when it is close enough to be the likely intent.

/// The candidate nearest to `given`, if its edit distance is at most max(2, ⌊len/3⌋) (a
/// slip of a letter or two, a swapped pair) and smaller than `given`'s own length.
pub fn nearest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (given.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter(|c| *c != given)
        .map(|c| (strsim::damerau_levenshtein(given, c), c))
        .filter(|(d, _)| *d <= limit && *d < given.chars().count())
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// " (did you mean `x`?)" for the nearest candidate, or nothing.
pub fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(given, candidates).map_or(String::new(), |c| format!(" (did you mean `{c}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slips_are_matched_and_strangers_are_not() {
        let losses = ["cosface", "arcface", "normface", "softmax_ce"];
        assert_eq!(nearest("cosfase", losses), Some("cosface"));
        assert_eq!(nearest("arcfcae", losses), Some("arcface"));
        assert_eq!(nearest("softmax-ce", losses), Some("softmax_ce"));
        assert_eq!(nearest("triplet", losses), None);
        assert_eq!(
            nearest("cosface", losses),
            None,
            "an exact name is no suggestion"
        );
        assert_eq!(
            did_you_mean("margn", ["margin", "scale"]),
            " (did you mean `margin`?)"
        );
        assert_eq!(did_you_mean("x", ["margin"]), "");
    }
}
