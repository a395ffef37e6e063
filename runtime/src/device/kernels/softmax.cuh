// The online softmax of the attention kernel, in pieces the host test runs too: a running
// maximum `m`, a running sum `s` of exp(score - m) and an accumulator of exp(score - m) * v,
// rescaled whenever the maximum grows; then the merge of several such partial states.

// Adds one key (score `sc`) and its value to the state; `acc` holds `count` values, the
// value's entries are v[0], v[stride], v[2 * stride], ...
LF_HD void lf_online_push(float* m, float* s, float* acc, int count, const float* v, int stride,
                          float sc) {
    float mn = fmaxf(*m, sc);
    float corr = expf(*m - mn); // 0 on the first key (m = -inf)
    float e = expf(sc - mn);
    *s = *s * corr + e;
    for (int j = 0; j < count; ++j) acc[j] = acc[j] * corr + e * v[(long long)j * stride];
    *m = mn;
}

// The output value from `parts` partial states: m[i], s[i] and one accumulated value acc[i *
// stride] each (a part that saw no key has s = 0 and is skipped). Needs one part with s > 0.
LF_HD float lf_online_merge(const float* m, const float* s, const float* acc, int stride,
                            int parts) {
    float big = -INFINITY;
    for (int w = 0; w < parts; ++w) big = fmaxf(big, m[w]);
    float total = 0.0f, v = 0.0f;
    for (int w = 0; w < parts; ++w) {
        if (s[w] > 0.0f) {
            float f = expf(m[w] - big);
            total += s[w] * f;
            v += acc[(long long)w * stride] * f;
        }
    }
    return v / total;
}
