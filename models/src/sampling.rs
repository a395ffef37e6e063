//! Choosing the next token from logits, and deciding when generation stops.
//!
//! The order of operations is HF `transformers`' (`generate` with `do_sample`): repetition
//! penalty, temperature, top-k, top-p, then a draw from the renormalized distribution.
//! Temperature 0 is greedy (argmax, after the penalty), with no randomness at all.
//!
//! Randomness comes from ChaCha8 seeded with [`SamplingConfig::seed`]; `rand_chacha`
//! promises the same stream on every platform and version, so a seed reproduces a run. A
//! draw is the top 53 bits of one `u64` scaled to `[0, 1)`.

use crate::error::{Error, Result};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How to pick each next token.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; `0` means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`None`: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability sums to at least `p`
    /// (`None` or `1.0`: all).
    pub top_p: Option<f32>,
    /// HF's repetition penalty: logits of tokens already in the sequence are divided by it
    /// when positive and multiplied by it when negative. `1.0` disables it.
    pub repetition_penalty: f32,
    /// Seed of the random stream.
    pub seed: u64,
}

impl Default for SamplingConfig {
    /// Greedy decoding, no penalty.
    fn default() -> SamplingConfig {
        SamplingConfig::greedy()
    }
}

impl SamplingConfig {
    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> SamplingConfig {
        SamplingConfig {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }

    /// Checks every setting is in range, saying which one is not.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::Sampling(format!(
                "temperature must be a finite number >= 0, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::Sampling("top_k must be at least 1".into()));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::Sampling(format!("top_p must be in (0, 1], got {p}")));
            }
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::Sampling(format!(
                "repetition_penalty must be a finite number > 0, got {}",
                self.repetition_penalty
            )));
        }
        Ok(())
    }
}

/// Picks tokens from logits under a [`SamplingConfig`]; deterministic given the seed.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplingConfig,
    rng: ChaCha8Rng,
    logits: Vec<f32>,
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler whose random stream starts at `config.seed`.
    pub fn new(config: SamplingConfig) -> Result<Sampler> {
        config.validate()?;
        Ok(Sampler {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            logits: Vec::new(),
            candidates: Vec::new(),
        })
    }

    /// The settings this sampler runs with.
    pub fn config(&self) -> &SamplingConfig {
        &self.config
    }

    /// The next token, given the last position's `logits` and the ids of the sequence so
    /// far (`history`, prompt included, for the repetition penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        if let Some(i) = logits.iter().position(|x| x.is_nan()) {
            return Err(Error::Sampling(format!("logit {i} is NaN")));
        }
        self.logits.clear();
        self.logits.extend_from_slice(logits);
        apply_repetition_penalty(&mut self.logits, history, self.config.repetition_penalty);
        if self.config.temperature == 0.0 {
            return argmax(&self.logits)
                .ok_or_else(|| Error::Sampling("no logits to choose from".into()));
        }
        let inv_t = 1.0 / self.config.temperature;
        self.candidates.clear();
        self.candidates.extend(
            self.logits
                .iter()
                .enumerate()
                .filter(|(_, &l)| l > f32::NEG_INFINITY)
                .map(|(i, &l)| (i as u32, l * inv_t)),
        );
        if self.candidates.is_empty() {
            return Err(Error::Sampling(
                "every logit is -inf: no token can be drawn".into(),
            ));
        }
        // Most likely first; ties keep the lower id first, so the order is deterministic.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let mut sorted = false;
        if let Some(k) = self.config.top_k {
            if k < self.candidates.len() {
                self.candidates.select_nth_unstable_by(k - 1, by_logit);
                self.candidates.truncate(k);
                // The k survivors in a defined order, so a seed means the same on any build.
                self.candidates.sort_unstable_by(by_logit);
                sorted = true;
            }
        }
        // Only top-p needs the whole vocabulary in order; a plain draw does not.
        let (keep, probs) = match self.config.top_p {
            Some(p) if p < 1.0 => {
                if !sorted {
                    self.candidates.sort_unstable_by(by_logit);
                }
                let probs = softmax(&self.candidates);
                (top_p_count(&probs, p), probs)
            }
            _ => {
                let probs = softmax(&self.candidates);
                (probs.len(), probs)
            }
        };
        let total: f64 = probs[..keep].iter().sum();
        let u = self.next_unit() * total;
        let mut acc = 0.0;
        for (i, &p) in probs[..keep].iter().enumerate() {
            acc += p;
            if u < acc {
                return Ok(self.candidates[i].0);
            }
        }
        // Rounding can leave u just at the total: the last kept token.
        Ok(self.candidates[keep - 1].0)
    }

    /// A uniform draw from `[0, 1)`.
    fn next_unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Index of the largest logit; the first one on ties; `None` when empty or all NaN.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i as u32)
}

/// HF's repetition penalty: for each distinct id in `history`, its logit is divided by
/// `penalty` when positive and multiplied by it when negative (so `penalty > 1` always makes
/// a repeat less likely). Ids outside `logits` are ignored.
pub fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &id in history {
        let i = id as usize;
        if i < logits.len() && !seen[i] {
            seen[i] = true;
            let l = logits[i];
            logits[i] = if l > 0.0 { l / penalty } else { l * penalty };
        }
    }
}

/// Probabilities of the candidates, in their order.
fn softmax(candidates: &[(u32, f32)]) -> Vec<f64> {
    let max = candidates
        .iter()
        .map(|&(_, l)| l as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = candidates
        .iter()
        .map(|&(_, l)| (l as f64 - max).exp())
        .collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// How many of `probs` (sorted descending, summing to 1) top-p keeps: the smallest prefix
/// whose mass reaches `p`, and at least one.
fn top_p_count(probs: &[f64], p: f32) -> usize {
    let p = p as f64;
    let mut acc = 0.0;
    for (i, &q) in probs.iter().enumerate() {
        acc += q;
        if acc >= p {
            return i + 1;
        }
    }
    probs.len()
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-sequence id was generated (its text is not part of the output).
    Eos(u32),
    /// A stop string appeared; the output ends just before it.
    StopString(String),
    /// The token budget ran out.
    MaxTokens,
}

/// What one generated token adds to the visible output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopStep {
    /// Text that is now safe to show (never part of a stop string).
    pub text: String,
    /// `Some` when generation must stop after this token.
    pub stop: Option<StopReason>,
}

/// Watches the generated tokens and text for EOS ids, stop strings and the token budget.
///
/// Text that might be the start of a stop string is held back until it is clear it is not,
/// so a streamed output never shows part of a stop string.
#[derive(Debug, Clone)]
pub struct StopCondition {
    eos_ids: Vec<u32>,
    stop_strings: Vec<String>,
    max_tokens: usize,
    tokens: usize,
    text: String,
    shown: usize,
}

impl StopCondition {
    /// Stops on any of `eos_ids`, at the first of `stop_strings` (empty ones are ignored), or
    /// after `max_tokens` tokens.
    pub fn new(eos_ids: &[u32], stop_strings: &[String], max_tokens: usize) -> StopCondition {
        StopCondition {
            eos_ids: eos_ids.to_vec(),
            stop_strings: stop_strings
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            max_tokens,
            tokens: 0,
            text: String::new(),
            shown: 0,
        }
    }

    /// Takes the next generated token `id` and the text it decoded to (`piece`, possibly
    /// empty while a character is incomplete).
    pub fn push(&mut self, id: u32, piece: &str) -> StopStep {
        self.tokens += 1;
        if self.eos_ids.contains(&id) {
            return StopStep {
                text: self.release_all(),
                stop: Some(StopReason::Eos(id)),
            };
        }
        self.text.push_str(piece);
        let unseen = &self.text[self.shown..];
        let hit = self
            .stop_strings
            .iter()
            .filter_map(|s| unseen.find(s.as_str()).map(|at| (at, s)))
            .min_by_key(|(at, _)| *at);
        if let Some((at, s)) = hit {
            let stop = StopReason::StopString(s.clone());
            let end = self.shown + at;
            self.text.truncate(end);
            let text = self.text[self.shown..].to_string();
            self.shown = end;
            return StopStep {
                text,
                stop: Some(stop),
            };
        }
        if self.tokens >= self.max_tokens {
            return StopStep {
                text: self.release_all(),
                stop: Some(StopReason::MaxTokens),
            };
        }
        let safe = self.text.len() - self.held_back();
        let text = self.text[self.shown..safe].to_string();
        self.shown = safe;
        StopStep { text, stop: None }
    }

    /// Text held back because it might start a stop string; call when generation ends
    /// for another reason.
    pub fn release_all(&mut self) -> String {
        let text = self.text[self.shown..].to_string();
        self.shown = self.text.len();
        text
    }

    /// Appends `tail` (e.g. the bytes of a character cut off by the token budget) once
    /// generation has stopped, and returns all text not shown yet.
    pub fn flush(&mut self, tail: &str) -> String {
        self.text.push_str(tail);
        self.release_all()
    }

    /// The output so far (held-back text included, a matched stop string excluded).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Tokens seen so far.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Bytes at the end of the unseen text that are a proper prefix of some stop string.
    fn held_back(&self) -> usize {
        let unseen = &self.text[self.shown..];
        let mut longest = 0;
        for s in &self.stop_strings {
            for (end, _) in s.char_indices().skip(1) {
                if end > longest && unseen.ends_with(&s[..end]) {
                    longest = end;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(temperature: f32, top_k: Option<usize>, top_p: Option<f32>, seed: u64) -> Sampler {
        Sampler::new(SamplingConfig {
            temperature,
            top_k,
            top_p,
            repetition_penalty: 1.0,
            seed,
        })
        .unwrap()
    }

    const LOGITS: [f32; 6] = [0.5, 2.0, -1.0, 1.9, 0.0, 1.0];

    #[test]
    fn temperature_zero_is_argmax() {
        let mut s = sampler(0.0, None, None, 7);
        for _ in 0..20 {
            assert_eq!(s.sample(&LOGITS, &[]).unwrap(), 1);
        }
    }

    #[test]
    fn top_k_one_is_argmax_at_any_temperature() {
        let mut s = sampler(5.0, Some(1), None, 3);
        for _ in 0..50 {
            assert_eq!(s.sample(&LOGITS, &[]).unwrap(), 1);
        }
    }

    #[test]
    fn top_k_draws_only_from_the_k_best() {
        let mut s = sampler(10.0, Some(2), None, 11);
        for _ in 0..200 {
            let id = s.sample(&LOGITS, &[]).unwrap();
            assert!(id == 1 || id == 3, "{id}");
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_reaching_p() {
        let probs = [0.5, 0.3, 0.15, 0.05];
        assert_eq!(top_p_count(&probs, 0.5), 1);
        assert_eq!(top_p_count(&probs, 0.51), 2);
        assert_eq!(top_p_count(&probs, 0.79), 2);
        assert_eq!(top_p_count(&probs, 0.81), 3);
        assert_eq!(top_p_count(&probs, 1.0), 4);
        assert_eq!(top_p_count(&probs, 0.01), 1);
    }

    #[test]
    fn top_p_excludes_the_tail_when_sampling() {
        // Probabilities about 0.66, 0.24, 0.09, 0.01: p = 0.85 keeps the first two.
        let logits = [3.0, 2.0, 1.0, -1.0];
        let mut s = sampler(1.0, None, Some(0.85), 5);
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[s.sample(&logits, &[]).unwrap() as usize] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
        assert_eq!(seen[2] + seen[3], 0, "{seen:?}");
    }

    #[test]
    fn same_seed_same_tokens_other_seed_other_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = sampler(1.0, None, None, seed);
            (0..64)
                .map(|_| s.sample(&logits, &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn sampling_frequencies_follow_softmax() {
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4, 3/4
        let mut s = sampler(1.0, None, None, 9);
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| s.sample(&logits, &[]).unwrap() == 1)
            .count();
        let freq = ones as f64 / n as f64;
        assert!((freq - 0.75).abs() < 0.02, "{freq}");
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut logits = [2.0, -2.0, 1.0, 0.0];
        apply_repetition_penalty(&mut logits, &[0, 1, 1, 3, 99], 2.0);
        assert_eq!(logits, [1.0, -4.0, 1.0, 0.0]);
    }

    #[test]
    fn repetition_penalty_can_change_the_greedy_choice() {
        let mut s = Sampler::new(SamplingConfig {
            repetition_penalty: 1.5,
            ..SamplingConfig::greedy()
        })
        .unwrap();
        // 2.0 / 1.5 = 1.33 < 1.9: the repeated token 1 loses to token 3.
        assert_eq!(s.sample(&LOGITS, &[1]).unwrap(), 3);
    }

    #[test]
    fn bad_settings_and_nan_logits_are_errors() {
        for cfg in [
            SamplingConfig {
                temperature: -1.0,
                ..SamplingConfig::greedy()
            },
            SamplingConfig {
                top_k: Some(0),
                ..SamplingConfig::greedy()
            },
            SamplingConfig {
                top_p: Some(0.0),
                ..SamplingConfig::greedy()
            },
            SamplingConfig {
                repetition_penalty: 0.0,
                ..SamplingConfig::greedy()
            },
        ] {
            assert!(Sampler::new(cfg).is_err());
        }
        let mut s = sampler(1.0, None, None, 0);
        assert!(s.sample(&[0.0, f32::NAN], &[]).is_err());
        assert!(s.sample(&[f32::NEG_INFINITY; 3], &[]).is_err());
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn stops_on_eos_without_its_text() {
        let mut stop = StopCondition::new(&[2], &[], 100);
        assert_eq!(stop.push(5, "Hello").text, "Hello");
        let step = stop.push(2, "</s>");
        assert_eq!(step.stop, Some(StopReason::Eos(2)));
        assert_eq!(step.text, "");
        assert_eq!(stop.text(), "Hello");
    }

    #[test]
    fn stop_string_across_tokens_is_never_shown() {
        let mut stop = StopCondition::new(&[], &["\nUser:".to_string()], 100);
        assert_eq!(stop.push(1, "Hi").text, "Hi");
        let step = stop.push(2, " there\nUs");
        assert_eq!(step.text, " there");
        assert_eq!(step.stop, None);
        let step = stop.push(3, "er: x");
        assert_eq!(step.text, "");
        assert_eq!(step.stop, Some(StopReason::StopString("\nUser:".into())));
        assert_eq!(stop.text(), "Hi there");
    }

    #[test]
    fn held_back_text_is_released_when_it_is_not_a_stop_string() {
        let mut stop = StopCondition::new(&[], &["END".to_string()], 100);
        assert_eq!(stop.push(1, "the E").text, "the ");
        assert_eq!(stop.push(2, "nd").text, "End");
    }

    #[test]
    fn max_tokens_releases_everything() {
        let mut stop = StopCondition::new(&[], &["END".to_string()], 2);
        assert_eq!(stop.push(1, "a").stop, None);
        let step = stop.push(2, "E");
        assert_eq!(step.stop, Some(StopReason::MaxTokens));
        assert_eq!(step.text, "E");
    }
}
