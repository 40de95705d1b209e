//! What an evaluation returns (SPEC §3): named outputs and named gradients, each a
//! scalar or a matrix. The same shape carries enclosures (reference), certified values
//! (eval) and plain floats (fast paths), so that every layer reports alike.

use crate::matrix::Matrix;

pub use crate::family::{Gradient, Output};

/// One named value: a scalar (a reduced loss) or a matrix (probabilities, a gradient).
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor<V> {
    /// A single value.
    Scalar(V),
    /// A row-major matrix.
    Matrix(Matrix<V>),
}

impl<V> Tensor<V> {
    /// Every value, row-major.
    pub fn values(&self) -> &[V] {
        match self {
            Tensor::Scalar(v) => std::slice::from_ref(v),
            Tensor::Matrix(m) => m.as_slice(),
        }
    }

    /// Every value, row-major, owned.
    pub fn into_values(self) -> Vec<V> {
        match self {
            Tensor::Scalar(v) => vec![v],
            Tensor::Matrix(m) => m.into_vec(),
        }
    }

    /// A readable place for value number `k` of this tensor, e.g. `[1][2]` (empty for a scalar).
    pub fn index_label(&self, k: usize) -> String {
        match self {
            Tensor::Scalar(_) => String::new(),
            Tensor::Matrix(m) => matrix_index(k, m.cols().max(1)),
        }
    }

    /// The same shape with every value mapped; the first error stops the map.
    pub fn try_map<W, E>(
        &self,
        mut f: impl FnMut(usize, &V) -> Result<W, E>,
    ) -> Result<Tensor<W>, E> {
        Ok(match self {
            Tensor::Scalar(v) => Tensor::Scalar(f(0, v)?),
            Tensor::Matrix(m) => {
                let data = m
                    .as_slice()
                    .iter()
                    .enumerate()
                    .map(|(k, v)| f(k, v))
                    .collect::<Result<Vec<W>, E>>()?;
                // Same length as the source matrix, so the shape check cannot fail.
                Tensor::Matrix(Matrix::from_vec(m.rows(), m.cols(), data).expect("same shape"))
            }
        })
    }
}

/// Where one value sits in an [`Answer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// `outputs` or `gradients`.
    pub section: &'static str,
    /// The output or gradient name.
    pub name: &'static str,
    /// The value's row-major index in its tensor.
    pub index: usize,
    /// The tensor's number of columns (0 for a scalar).
    pub cols: usize,
}

impl Place {
    /// The readable place, e.g. `gradients.features[0][1]` (built on demand: an answer of
    /// millions of values labels only the one it reports).
    pub fn label(&self) -> String {
        self.label_from_row(0)
    }

    /// [`Place::label`] for a tensor whose first row is row `first_row` of the whole
    /// answer's (a block of rows, `crate::reference::blocks`).
    pub fn label_from_row(&self, first_row: usize) -> String {
        let index = if self.cols == 0 {
            String::new()
        } else {
            matrix_index(self.index + first_row * self.cols, self.cols)
        };
        format!("{}.{}{index}", self.section, self.name)
    }
}

/// `[row][col]` of value number `k` in a row-major matrix of `cols ≥ 1` columns.
fn matrix_index(k: usize, cols: usize) -> String {
    format!("[{}][{}]", k / cols, k % cols)
}

/// The outputs and gradients of one case, in catalogue order.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer<V> {
    /// `loss`, `probabilities`, `log_probabilities`, … (SPEC §1 "outputs").
    pub outputs: Vec<(&'static str, Tensor<V>)>,
    /// Gradients of the loss, keyed by the input they differentiate (SPEC §1 "gradients").
    pub gradients: Vec<(&'static str, Tensor<V>)>,
}

impl<V> Answer<V> {
    /// Every named tensor with its section (`outputs` or `gradients`).
    pub fn sections(&self) -> impl Iterator<Item = (&'static str, &'static str, &Tensor<V>)> {
        let outs = self.outputs.iter().map(|(n, t)| ("outputs", *n, t));
        let grads = self.gradients.iter().map(|(n, t)| ("gradients", *n, t));
        outs.chain(grads)
    }

    /// [`Answer::sections`] by value.
    pub fn into_sections(self) -> impl Iterator<Item = (&'static str, &'static str, Tensor<V>)> {
        let outs = self.outputs.into_iter().map(|(n, t)| ("outputs", n, t));
        let grads = self.gradients.into_iter().map(|(n, t)| ("gradients", n, t));
        outs.chain(grads)
    }

    /// The scalar `loss`, for every loss but `softmax`.
    pub fn loss(&self) -> Option<&V> {
        match self.out(Output::Loss)? {
            Tensor::Scalar(v) => Some(v),
            Tensor::Matrix(_) => None,
        }
    }

    /// An output, by its typed name; `None` where the loss has no such output.
    pub fn out(&self, output: Output) -> Option<&Tensor<V>> {
        self.output(output.as_str())
    }

    /// A gradient, by the input it differentiates; `None` where the loss has none.
    pub fn grad(&self, gradient: Gradient) -> Option<&Tensor<V>> {
        self.gradient(gradient.as_str())
    }

    /// Looks up an output by name.
    pub fn output(&self, name: &str) -> Option<&Tensor<V>> {
        self.outputs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
    }

    /// Looks up a gradient by name.
    pub fn gradient(&self, name: &str) -> Option<&Tensor<V>> {
        self.gradients
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
    }

    /// Looks up a value group by its SPEC §4 name, `outputs/NAME` or `gradients/NAME`.
    pub fn group(&self, group: &str) -> Option<&Tensor<V>> {
        match group.split_once('/') {
            Some(("outputs", name)) => self.output(name),
            Some(("gradients", name)) => self.gradient(name),
            _ => None,
        }
    }

    /// The same answer with every value mapped; `f` gets the place of each value.
    pub fn try_map<W, E>(
        &self,
        mut f: impl FnMut(&str, &V) -> Result<W, E>,
    ) -> Result<Answer<W>, E> {
        let mut map_section = |section: &'static str, items: &[(&'static str, Tensor<V>)]| {
            items
                .iter()
                .map(|(name, t)| {
                    let mapped = t.try_map(|index, v| {
                        f(&format!("{section}.{name}{}", t.index_label(index)), v)
                    })?;
                    Ok((*name, mapped))
                })
                .collect::<Result<Vec<_>, E>>()
        };
        Ok(Answer {
            outputs: map_section("outputs", &self.outputs)?,
            gradients: map_section("gradients", &self.gradients)?,
        })
    }

    /// The same answer with every value mapped in parallel, consuming it: `f` gets the
    /// [`Place`] of each value and the value itself (a map that keeps it does not copy it,
    /// and what it drops is freed as the map goes). The error returned is that of the
    /// first failing value in catalogue order.
    pub fn into_try_map_at<W: Send, E: Send>(
        self,
        f: impl Fn(&Place, V) -> Result<W, E> + Sync,
    ) -> Result<Answer<W>, E>
    where
        V: Send,
    {
        use rayon::prelude::*;
        let map_section = |section: &'static str, items: Vec<(&'static str, Tensor<V>)>| {
            items
                .into_iter()
                .map(|(name, t)| {
                    let (shape, values) = match t {
                        Tensor::Scalar(v) => (None, vec![v]),
                        Tensor::Matrix(m) => (Some((m.rows(), m.cols())), m.into_vec()),
                    };
                    let cols = shape.map_or(0, |(_, c)| c.max(1));
                    // The first failure in catalogue order; the mapped values are held as
                    // options (the size of the value itself) and unwrapped in place.
                    let first_error: std::sync::Mutex<Option<(usize, E)>> =
                        std::sync::Mutex::new(None);
                    let mapped: Vec<Option<W>> = values
                        .into_par_iter()
                        .enumerate()
                        .map(|(index, v)| {
                            let place = Place {
                                section,
                                name,
                                index,
                                cols,
                            };
                            f(&place, v)
                                .map_err(|e| {
                                    let mut first =
                                        first_error.lock().unwrap_or_else(|p| p.into_inner());
                                    if first.as_ref().is_none_or(|(k, _)| index < *k) {
                                        *first = Some((index, e));
                                    }
                                })
                                .ok()
                        })
                        .collect();
                    if let Some((_, e)) =
                        first_error.into_inner().unwrap_or_else(|p| p.into_inner())
                    {
                        return Err(e);
                    }
                    let mapped: Vec<W> = mapped.into_iter().flatten().collect();
                    let tensor = match shape {
                        None => Tensor::Scalar(
                            mapped.into_iter().next().expect("a scalar has one value"),
                        ),
                        Some((rows, cols)) => Tensor::Matrix(
                            Matrix::from_vec(rows, cols, mapped).expect("same shape"),
                        ),
                    };
                    Ok((name, tensor))
                })
                .collect::<Result<Vec<_>, E>>()
        };
        Ok(Answer {
            outputs: map_section("outputs", self.outputs)?,
            gradients: map_section("gradients", self.gradients)?,
        })
    }
}
