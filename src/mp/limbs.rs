//! Fixed-width unsigned integers as little-endian `u64` limbs: the operations that the
//! fixed-point exponential ([`crate::mp::fast_exp`]) and the balls ([`crate::mp::ball`])
//! share.

/// a + b on N limbs, modulo 2^(64N) (two's complement for signed numbers).
pub(crate) fn add<const N: usize>(a: &[u64; N], b: &[u64; N]) -> [u64; N] {
    let mut out = [0u64; N];
    let mut carry = false;
    for k in 0..N {
        let (s1, c1) = a[k].overflowing_add(b[k]);
        let (s2, c2) = s1.overflowing_add(u64::from(carry));
        out[k] = s2;
        carry = c1 || c2;
    }
    out
}

/// The 512-bit product of two 256-bit numbers without the limb products a_i·b_j with
/// i + j < `SKIP` (the exact product for `SKIP` = 0). What is left out, carries included,
/// is below Σ_{k<SKIP} (k + 1)·2^(64k + 128). (A constant, so that the loops unroll.)
pub(crate) fn product<const SKIP: usize>(a: &[u64; 4], b: &[u64; 4]) -> [u64; 8] {
    let mut wide = [0u64; 8];
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u128;
        for (j, &bj) in b.iter().enumerate().skip(SKIP.saturating_sub(i)) {
            let t = u128::from(ai) * u128::from(bj) + u128::from(wide[i + j]) + carry;
            wide[i + j] = t as u64;
            carry = t >> 64;
        }
        wide[i + 4] = carry as u64;
    }
    wide
}

/// ⌊x·2^left⌋ on N limbs (the bits shifted below 2^0 dropped), and whether any bit was
/// dropped; `None` where it does not fit in N limbs.
pub(crate) fn shifted<const N: usize>(x: &[u64], left: i64) -> Option<([u64; N], bool)> {
    let mut out = [0u64; N];
    let mut dropped = false;
    for (index, &limb) in x.iter().enumerate() {
        if limb == 0 {
            continue;
        }
        // the limb's bit 0 lands at position `at`
        let at = 64 * index as i64 + left;
        if at >= 0 {
            let (w, b) = ((at / 64) as usize, (at % 64) as u32);
            let spill = if b > 0 { limb >> (64 - b) } else { 0 };
            if w >= N || (w + 1 >= N && spill != 0) {
                return None;
            }
            out[w] |= limb << b;
            if spill != 0 {
                out[w + 1] |= spill;
            }
        } else if at > -64 {
            let s = at.unsigned_abs() as u32;
            out[0] |= limb >> s;
            dropped |= limb << (64 - s) != 0;
        } else {
            dropped = true;
        }
    }
    Some((out, dropped))
}
