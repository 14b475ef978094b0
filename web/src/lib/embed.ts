// Similarity math and colours of the embed playground's heat map.

/** Cosine similarity of two vectors (0 when either is all zeros). */
export function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** The full pairwise similarity matrix of `vectors`. */
export function similarityMatrix(vectors: number[][]): number[][] {
  return vectors.map((a, i) => vectors.map((b, j) => (i === j ? 1 : cosine(a, b))));
}

/** Heat colour of a similarity in [-1, 1]: blue (−1) through white (0) to red (1). */
export function heatColor(s: number): string {
  const t = Math.max(-1, Math.min(1, s));
  if (t >= 0) {
    const c = Math.round(255 * (1 - t));
    return `rgb(255, ${c}, ${c})`;
  }
  const c = Math.round(255 * (1 + t));
  return `rgb(${c}, ${c}, 255)`;
}

/** Text colour readable on heatColor(s). */
export function heatTextColor(s: number): string {
  return Math.abs(s) > 0.6 ? "#fff" : "#111";
}
