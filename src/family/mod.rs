//! The catalogue: every loss family of SPEC §1 in one home, and the one list of them that
//! every layer asks.
//!
//! A family is a set of losses that share one case type and one piece of mathematics:
//!
//! | family | losses | home |
//! |---|---|---|
//! | [`softmax::SoftmaxFamily`] | `softmax` | `family/softmax/` |
//! | [`softmax::SoftmaxCeFamily`] | `softmax_ce` | `family/softmax/` |
//! | [`distill::DistillFamily`] | `distill` | `family/distill/` |
//! | [`psi::PsiFamily`] | `lsoftmax`, `sphereface` | `family/psi/` |
//! | [`center::CenterFamily`] | `center` | `family/center/` |
//! | [`normalized::NormalizedFamily`] | `normface`, `cosface`, `amsoftmax`, `arcface`, `combined` | `family/normalized/` |
//! | [`focal::FocalFamily`] | `focal`, `poly1` | `family/focal/` |
//! | [`subcenter::SubcenterFamily`] | `subcenter_arcface` | `family/subcenter/` |
//! | [`adaptive::AdaptiveFamily`] | `curricularface`, `adaface`, `magface`, `adacos` | `family/adaptive/` |
//!
//! Each family implements the crate-internal trait `LossFamily` once: its parameters with
//! their defaults and validation (`parse`, `validate`), its interval reference
//! (`reference`, `reference_plain`), its fast f32/f64 path (`fast`), its rows of the
//! precision table with their error measures (`quantities`, `measures`, and a rows type
//! with its entries), the scales of `lossref check`'s tolerances (`tolerance`), the exact
//! form of its zero test (`exact_form`), the conventions the diagnosis tries
//! (`conventions`), its corpus generators (`corpus_cases`, `exact_zero_cases`), its
//! switch points ([`switch_points`]) and what its logits are made of for SPEC §6's
//! precision tiers (`logit_stages`). The layers are generic over it: `case`, `reference`,
//! `fast`, `precision`, `tolerance`, `exact`, `corpus` and `check` each call the functions
//! that `catalogue!` generates from the list in this file, and never name a family.
//!
//! Adding a family is one new home (a folder with a type that implements `LossFamily`)
//! and one line in that list, plus its variant of [`crate::spec::Case`] and its ids in
//! [`crate::spec::LossId`]; the compiler then points at every method the home lacks, and
//! the coverage tests at every generator, strategy and reference that lacks the loss.

pub mod adaptive;
pub mod center;
pub mod distill;
pub mod focal;
pub mod normalized;
pub mod psi;
pub mod softmax;
pub mod subcenter;

use crate::answer::Answer;
use crate::case::{Fields, Inputs};
use crate::check::diagnose::Alternative;
use crate::corpus::generate::Generated;
use crate::error::Result;
use crate::exact::ExactForm;
use crate::fast::Real;
use crate::mp::interval::Interval;
use crate::precision::Entry;
use crate::reference::blocks::{ClassBlocks, RowBlocks};
use crate::spec::{Arithmetic, Case, Dtype, LossId};
use crate::tier::LogitStages;
use crate::tolerance::Scale;
use serde_json::Value;
use std::fmt;

/// Everything lossref knows about one family of losses (SPEC §1), in one place.
pub(crate) trait LossFamily {
    /// The validated case of this family's losses.
    type Case;

    /// The family's name (`softmax`, `distill`, `psi`, `normalized`, …).
    const NAME: &'static str;

    /// The losses of this family (SPEC §1 ids), in catalogue order.
    const LOSSES: &'static [LossId];

    /// Reads the case of `loss` (one of [`LossFamily::LOSSES`]) from its `params` and
    /// `inputs`, with SPEC §1's defaults, validating every value.
    ///
    /// # Errors
    /// A parameter or input of the wrong type, shape or range, naming its place.
    fn parse(loss: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<Self::Case>;

    /// The loss this case evaluates.
    fn loss(case: &Self::Case) -> LossId;

    /// Checks a case however it was built (parsed, or by hand through the public fields):
    /// shapes, finite inputs, labels in range, parameters in their ranges and consistent
    /// with the loss, and the undefined points that need no evaluation to see (zero-norm
    /// rows). Every layer's entry point runs it before evaluating.
    ///
    /// # Errors
    /// The first violation, naming its place (`features[2]`, `labels[0]`,
    /// `params.scale`).
    fn validate(case: &Self::Case) -> Result<()>;

    /// The case's reduction, where it has one.
    fn reduction_mut(case: &mut Self::Case) -> Option<&mut crate::spec::Reduction>;

    /// The enclosures of every output and gradient at `prec` bits (SPEC §3's names).
    ///
    /// # Errors
    /// An undefined point (SPEC §1), naming the row.
    fn reference(case: &Self::Case, prec: u32) -> Result<Answer<Interval>>;

    /// The same enclosures by the plain path, one MPFR operation per term of the formula:
    /// what a batch-scale [`LossFamily::reference`] is checked against. The families with
    /// one path answer [`LossFamily::reference`].
    ///
    /// # Errors
    /// As [`LossFamily::reference`].
    fn reference_plain(case: &Self::Case, prec: u32) -> Result<Answer<Interval>> {
        Self::reference(case, prec)
    }

    /// How the answer splits into blocks of rows that certify apart
    /// ([`crate::reference::blocks`]): where every output is row-wise or reduced from one
    /// term per row. `None`, the default, for a family with an output that couples rows
    /// otherwise (a gradient of weights that every row shares).
    fn row_blocks(_case: &Self::Case) -> Option<RowBlocks<Self::Case>> {
        None
    }

    /// How a case too large to certify whole at `block_values` streams over blocks of
    /// classes ([`crate::reference::blocks`]): `None`, the default, for a family without a
    /// gradient whose rows are classes, or a case small enough.
    fn class_blocks(_case: &Self::Case, _block_values: usize) -> Option<ClassBlocks<Self::Case>> {
        None
    }

    /// The fast path's answer in dtype `T`, widened exactly to f64, shaped like the
    /// reference's.
    ///
    /// # Errors
    /// The fast path's own errors (shapes, non-finite values, undefined points).
    fn fast<T: Real>(case: &Self::Case) -> Result<Answer<f64>>;

    /// The value groups of the answer (`outputs/NAME`, `gradients/NAME`), in the answer's
    /// order, each with its row of the precision table.
    fn quantities(case: &Self::Case) -> Vec<(&'static str, Quantity)>;

    /// The scale of every value of each group of [`LossFamily::quantities`] in `dtype`,
    /// in whose ulps the fast path's error is measured (`crate::precision`), given the
    /// exact values rounded to binary64.
    fn measures(case: &Self::Case, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<f64>>;

    /// The tolerance data of every value of each group of [`LossFamily::quantities`]
    /// (`crate::tolerance`) for a case of `dtype`, given the exact values rounded to
    /// binary64.
    fn tolerance(case: &Self::Case, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<Scale>>;

    /// The exact form of the zero test at working precision `prec`, or `None` for a
    /// family without exact zeros to prove, or a case beyond the exact budget.
    fn exact_form(case: &Self::Case, prec: u32) -> Option<Box<dyn ExactForm>>;

    /// The conventions of real implementations that the diagnosis of `lossref check`
    /// tries on this family (SPEC §4), each as the answer it gives on `case` (`whole` is
    /// the same case as a [`Case`]), judged in `dtype`. The other reduction is tried for
    /// every family and is not repeated here.
    fn conventions(case: &Self::Case, whole: &Case, dtype: Dtype) -> Vec<Alternative>;

    /// Appends the family's corpus cases in `dtype` (SPEC §4): each variant in the regimes
    /// where its implementations break, drawn by named generators.
    fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>);

    /// The family's own exact-zero constructions in `dtype` (tag `edge:exact-zero`);
    /// empty for the families whose exact zeros come from the shared special-angle
    /// construction of `crate::corpus::exact_zero`.
    fn exact_zero_cases(dtype: Dtype) -> Vec<Generated>;

    /// The points where `loss`'s rule switches sides or its slope is singular (SPEC §1),
    /// with `params` (a JSON `params` object; SPEC §1's defaults for what it omits). The
    /// corpus generators, the exact-zero family, the walk tests and the Python strategies
    /// take them from here.
    ///
    /// # Errors
    /// A parameter of the wrong type or range, or one the loss does not take, named.
    fn switch_points(loss: LossId, params: &Value) -> Result<Vec<SwitchPoint>>;

    /// What the case's logits are made of, for SPEC §6's stages (`crate::tier`): the logit
    /// error each stage puts in per unit roundoff, at the stages' unit roundoff `u` (which
    /// a rule whose slope has a pole, acos's, needs: near it a rounding moves θ by at most
    /// √(2·Δcos θ), not Δcos θ/sin θ).
    fn logit_stages(case: &Self::Case, u: f64) -> LogitStages;
}

/// A point of a family's target rule where implementations go wrong (SPEC §1): a switch
/// between two formulas, a segment boundary, or a pole of acos.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwitchPoint {
    /// The corpus tag of the regime around it (`edge:thmm-switch`, `edge:easy-switch`,
    /// `edge:psi-boundary`, `edge:acos-near-1`, `edge:acos-near-minus-1`).
    pub tag: &'static str,
    /// The angle θ of the point, in binary64 (`π − m`, `kπ/m`, …, each rounded once from
    /// the formula written in the point's docs).
    pub theta: f64,
    /// cos θ at the point, exact where it is 0 or ±1, else `theta.cos()`.
    pub cos: f64,
    /// Whether the requested gradient does not exist exactly there (SPEC §1, undefined
    /// points): the `easy` switch and acos's poles for a full angular gradient.
    pub undefined: bool,
}

/// Expands the list of families into the functions every layer calls: one `match` over
/// [`Case`] (or [`LossId`]) per layer, each arm asking the family's [`LossFamily`] impl.
macro_rules! catalogue {
    ($($variant:ident => $family:ty, $rows:ty;)*) => {
        /// A fast function's output: the row key of the precision table, one family's
        /// loss × one of its outputs (each family's rows type names them; AM-Softmax is
        /// CosFace's mathematics and shares its rows).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Quantity {
            $(
                #[doc = concat!("A row of the `", stringify!($variant), "` family's (`", stringify!($rows), "`).")]
                $variant($rows),
            )*
        }

        /// How many rows the table has.
        const QUANTITIES: usize = 0 $(+ <$rows as TableRows>::ALL.len())*;

        impl Quantity {
            /// Every quantity, in table order (the catalogue's, then each family's).
            pub const ALL: [Quantity; QUANTITIES] = {
                const fn first() -> Quantity {
                    $(
                        if !<$rows as TableRows>::ALL.is_empty() {
                            return Quantity::$variant(<$rows as TableRows>::ALL[0]);
                        }
                    )*
                    panic!("the table has rows")
                }
                let mut all = [first(); QUANTITIES];
                let mut k = 0;
                $(
                    let mut i = 0;
                    while i < <$rows as TableRows>::ALL.len() {
                        all[k] = Quantity::$variant(<$rows as TableRows>::ALL[i]);
                        k += 1;
                        i += 1;
                    }
                )*
                all
            };

            /// The loss whose row this is (`softmax_ce`, `cosface`, …).
            pub fn family(self) -> &'static str {
                match self { $(Quantity::$variant(o) => o.loss(),)* }
            }

            /// The output (`loss`, `grad`, `centers_next`, `grad_scale`; empty for softmax).
            pub fn output(self) -> &'static str {
                match self { $(Quantity::$variant(o) => o.output(),)* }
            }

            /// Whether the row is a gradient's (`grad`, `grad_scale`, `options_grad`): SPEC
            /// §6's `amp` returns it in the 16-bit dtype, an output in float32.
            pub fn is_gradient(self) -> bool {
                self.output().contains("grad")
            }

            /// The row's name in reports: `softmax`, `log_softmax`, `family.output`.
            pub fn name(self) -> String {
                match self { $(Quantity::$variant(o) => o.name(),)* }
            }
        }

        impl fmt::Display for Quantity {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.name())
            }
        }

        /// The row of the precision table of `quantity` in the format `column`: each family
        /// states its own rows in its home, with a match that names every output, so that a
        /// quantity without an entry for both formats does not compile.
        pub(crate) fn entry(quantity: Quantity, column: Arithmetic) -> Entry {
            match quantity { $(Quantity::$variant(o) => o.entry(column),)* }
        }

        /// Every family's losses, in catalogue order: the loss list that Rust, Python and
        /// the test generators read.
        pub const LOSSES: &[&[LossId]] = &[$(<$family as LossFamily>::LOSSES),*];

        /// Every family's name with its losses, in catalogue order.
        pub const FAMILIES: &[(&str, &[LossId])] =
            &[$((<$family as LossFamily>::NAME, <$family as LossFamily>::LOSSES)),*];

        /// Reads the case of `loss` through its family's [`LossFamily::parse`].
        pub(crate) fn parse(loss: LossId, params: &mut Fields, inputs: &mut Inputs) -> Result<Case> {
            $(
                if <$family as LossFamily>::LOSSES.contains(&loss) {
                    return <$family as LossFamily>::parse(loss, params, inputs).map(Case::$variant);
                }
            )*
            unreachable!("every LossId belongs to a family of the catalogue (tested)")
        }

        /// See [`LossFamily::loss`].
        pub(crate) fn loss(case: &Case) -> LossId {
            match case { $(Case::$variant(c) => <$family as LossFamily>::loss(c),)* }
        }

        /// See `LossFamily::validate`.
        pub(crate) fn validate(case: &Case) -> Result<()> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::validate(c),)* }
        }

        /// See [`LossFamily::reduction_mut`].
        pub(crate) fn reduction_mut(case: &mut Case) -> Option<&mut crate::spec::Reduction> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::reduction_mut(c),)* }
        }

        /// See [`LossFamily::reference`].
        pub(crate) fn reference(case: &Case, prec: u32) -> Result<Answer<Interval>> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::reference(c, prec),)* }
        }

        /// See [`LossFamily::reference_plain`].
        pub(crate) fn reference_plain(case: &Case, prec: u32) -> Result<Answer<Interval>> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::reference_plain(c, prec),)* }
        }

        /// The certified answer of `case` a block of rows at a time (about `block_values`
        /// values each), kept as [`crate::mp::certify::Rounded`] values, where its family
        /// splits by rows ([`LossFamily::row_blocks`]); `None` where it does not.
        pub(crate) fn certified_in_row_blocks(
            case: &Case,
            with_decimals: bool,
            block_values: usize,
        ) -> Option<Result<crate::mp::certify::CertifiedAnswer<crate::mp::certify::Rounded>>> {
            match case {
                $(Case::$variant(c) => <$family as LossFamily>::row_blocks(c).map(|blocks| {
                    crate::reference::blocks::certify_rows(c, case, blocks, with_decimals, block_values)
                }),)*
            }
        }

        /// The shape of the gradient that `case` streams at `block_values`
        /// ([`LossFamily::class_blocks`]); `None` where it does not stream.
        pub(crate) fn class_blocks_shape(
            case: &Case,
            block_values: usize,
        ) -> Option<crate::reference::blocks::StreamedShape> {
            match case {
                $(Case::$variant(c) => <$family as LossFamily>::class_blocks(c, block_values)
                    .map(|b| (b.name, b.position, b.rows, b.cols)),)*
            }
        }

        /// The certified answer of `case` streamed over blocks of classes, without the
        /// streamed gradient, which goes to `sink` ([`LossFamily::class_blocks`]); `None`
        /// where it does not stream.
        pub(crate) fn certified_in_class_blocks(
            case: &Case,
            with_decimals: bool,
            block_values: usize,
            sink: &mut crate::reference::blocks::ClassSink<'_>,
        ) -> Result<Option<crate::mp::certify::CertifiedAnswer<crate::mp::certify::Rounded>>> {
            match case {
                $(Case::$variant(c) => match <$family as LossFamily>::class_blocks(c, block_values) {
                    Some(b) => (b.certify)(c, case, with_decimals, block_values, sink),
                    None => Ok(None),
                },)*
            }
        }

        /// See [`LossFamily::fast`].
        pub(crate) fn fast<T: Real>(case: &Case) -> Result<Answer<f64>> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::fast::<T>(c),)* }
        }

        /// See [`LossFamily::quantities`].
        pub(crate) fn quantities(case: &Case) -> Vec<(&'static str, Quantity)> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::quantities(c),)* }
        }

        /// See [`LossFamily::measures`].
        pub(crate) fn measures(case: &Case, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<f64>> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::measures(c, exact, dtype),)* }
        }

        /// See [`LossFamily::tolerance`].
        pub(crate) fn tolerance(case: &Case, exact: &Answer<f64>, dtype: Dtype) -> Vec<Vec<Scale>> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::tolerance(c, exact, dtype),)* }
        }

        /// See [`LossFamily::conventions`].
        pub(crate) fn conventions(case: &Case, dtype: Dtype) -> Vec<Alternative> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::conventions(c, case, dtype),)* }
        }

        /// Every family's corpus cases in `dtype` (see [`LossFamily::corpus_cases`]).
        pub(crate) fn corpus_cases(dtype: Dtype, out: &mut Vec<Generated>) {
            $(<$family as LossFamily>::corpus_cases(dtype, out);)*
        }

        /// Every family's exact-zero constructions in `dtype`, in catalogue order.
        pub(crate) fn exact_zero_cases(dtype: Dtype) -> Vec<Generated> {
            let mut out = Vec::new();
            $(out.extend(<$family as LossFamily>::exact_zero_cases(dtype));)*
            out
        }

        /// The points of `loss`'s rule where implementations go wrong (SPEC §1), with
        /// `params` (a JSON `params` object; SPEC §1's defaults for what it omits), as its
        /// family states them: `thmm` and `easy` switches, ψ's segment boundaries kπ/m,
        /// acos's poles.
        ///
        /// ```
        /// use lossref::spec::LossId;
        /// let points = lossref::family::switch_points(LossId::ArcFace, &serde_json::json!({"boundary": "thmm"})).unwrap();
        /// let thmm = points.iter().find(|p| p.tag == "edge:thmm-switch").unwrap();
        /// assert_eq!(thmm.theta, std::f64::consts::PI - 0.5); // π − m, m = 0.5 by default
        /// ```
        ///
        /// # Errors
        /// A parameter of the wrong type or range, named.
        pub fn switch_points(loss: LossId, params: &Value) -> Result<Vec<SwitchPoint>> {
            $(
                if <$family as LossFamily>::LOSSES.contains(&loss) {
                    return <$family as LossFamily>::switch_points(loss, params);
                }
            )*
            unreachable!("every LossId belongs to a family of the catalogue (tested)")
        }

        /// See `LossFamily::logit_stages`.
        pub(crate) fn logit_stages(case: &Case, u: f64) -> LogitStages {
            match case { $(Case::$variant(c) => <$family as LossFamily>::logit_stages(c, u),)* }
        }

        /// See [`LossFamily::exact_form`].
        pub(crate) fn exact_form(case: &Case, prec: u32) -> Option<Box<dyn ExactForm>> {
            match case { $(Case::$variant(c) => <$family as LossFamily>::exact_form(c, prec),)* }
        }
    };
}

// The one list: each family's `Case` variant, its home's type, and its rows of the
// precision table. A new family is one line here.
catalogue! {
    Softmax => softmax::SoftmaxFamily, softmax::SoftmaxOutput;
    SoftmaxCe => softmax::SoftmaxCeFamily, softmax::SoftmaxCeOutput;
    Distill => distill::DistillFamily, distill::DistillOutput;
    Multiplicative => psi::PsiFamily, psi::PsiOutput;
    Center => center::CenterFamily, center::CenterOutput;
    Normalized => normalized::NormalizedFamily, normalized::NormalizedOutput;
    Focal => focal::FocalFamily, focal::FocalOutput;
    Subcenter => subcenter::SubcenterFamily, subcenter::SubcenterOutput;
    Adaptive => adaptive::AdaptiveFamily, adaptive::AdaptiveOutput;
}

/// A family's rows of the precision table (`crate::precision`): every output it states an
/// entry for, with the loss and output names of reports.
pub(crate) trait TableRows: Copy + 'static {
    /// Every row, in table order.
    const ALL: &'static [Self];

    /// The loss (`cosface`, …).
    fn loss(self) -> &'static str;

    /// The output (`loss`, `grad`, …), empty where the loss name says it all.
    fn output(self) -> &'static str;

    /// The row's name: `loss.output`, or the loss alone when the output is empty.
    fn name(self) -> String {
        if self.output().is_empty() {
            self.loss().to_string()
        } else {
            format!("{}.{}", self.loss(), self.output())
        }
    }

    /// The row's entry in `dtype`.
    fn entry(self, dtype: Arithmetic) -> Entry;
}

/// An output of SPEC §1 (every family's, by name): the typed key of [`crate::answer::Answer::out`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// `loss`: every loss but `softmax`.
    Loss,
    /// `probabilities` of `softmax`.
    Probabilities,
    /// `log_probabilities` of `softmax`.
    LogProbabilities,
    /// `centers_next` of `center`: the centers after one update.
    CentersNext,
    /// `t_next` of `curricularface`: t' (SPEC §5).
    TNext,
    /// `batch_mean_next` of `adaface`: μ (SPEC §5).
    BatchMeanNext,
    /// `batch_std_next` of `adaface`: σ (SPEC §5).
    BatchStdNext,
    /// `scale_next` of `adacos`: s' (SPEC §5).
    ScaleNext,
}

impl Output {
    /// Every output, in catalogue order.
    pub const ALL: [Output; 8] = [
        Output::Loss,
        Output::Probabilities,
        Output::LogProbabilities,
        Output::CentersNext,
        Output::TNext,
        Output::BatchMeanNext,
        Output::BatchStdNext,
        Output::ScaleNext,
    ];

    /// The SPEC §1 name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Output::Loss => "loss",
            Output::Probabilities => "probabilities",
            Output::LogProbabilities => "log_probabilities",
            Output::CentersNext => "centers_next",
            Output::TNext => "t_next",
            Output::BatchMeanNext => "batch_mean_next",
            Output::BatchStdNext => "batch_std_next",
            Output::ScaleNext => "scale_next",
        }
    }
}

/// A gradient of SPEC §1 (every family's, by the input it differentiates): the typed key of [`crate::answer::Answer::grad`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gradient {
    /// ∂L/∂`logits` (`softmax_ce`).
    Logits,
    /// ∂L/∂`student_logits` (`distill`).
    StudentLogits,
    /// ∂L/∂`features`.
    Features,
    /// ∂L/∂`weights`.
    Weights,
    /// ∂L/∂`centers` (`center`).
    Centers,
    /// ∂L/∂s, the scale of `normface`.
    Scale,
}

impl Gradient {
    /// Every gradient, in catalogue order.
    pub const ALL: [Gradient; 6] = [
        Gradient::Logits,
        Gradient::StudentLogits,
        Gradient::Features,
        Gradient::Weights,
        Gradient::Centers,
        Gradient::Scale,
    ];

    /// The SPEC §1 name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Gradient::Logits => "logits",
            Gradient::StudentLogits => "student_logits",
            Gradient::Features => "features",
            Gradient::Weights => "weights",
            Gradient::Centers => "centers",
            Gradient::Scale => "scale",
        }
    }
}
