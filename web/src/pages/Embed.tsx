// Embed playground: pick a model (GET /info → embedding_models), embed one text per line
// (POST /api/v1/embed/batch) and show the pairwise cosine-similarity matrix as a heat map.
import { useState, type FormEvent } from "react";
import { api, errorText } from "../api/client";
import { ErrorBox, Select, Status, TextArea } from "../components/ui";
import { useLoad, usePageTitle } from "../hooks";
import { heatColor, heatTextColor, similarityMatrix } from "../lib/embed";

interface Info {
  embedding_models?: string[];
  model_id?: string;
  max_input_length?: number;
}
interface BatchReply {
  embeddings: number[][];
  dimension: number;
  model?: string;
  processing_time_ms?: number;
  tokens?: number;
}

export function HeatMap({ labels, matrix }: { labels: string[]; matrix: number[][] }) {
  const short = (s: string) => (s.length > 24 ? s.slice(0, 23) + "…" : s);
  return (
    <table className="heatmap" aria-label="Similarity matrix">
      <thead>
        <tr>
          <td />
          {labels.map((l, j) => (
            <th key={j} scope="col" title={l}>
              {j + 1}. {short(l)}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {matrix.map((row, i) => (
          <tr key={i}>
            <th scope="row" title={labels[i]}>
              {i + 1}. {short(labels[i])}
            </th>
            {row.map((s, j) => (
              <td
                key={j}
                style={{ background: heatColor(s), color: heatTextColor(s) }}
                aria-label={`similarity of ${i + 1} and ${j + 1}: ${s.toFixed(3)}`}
                data-testid={`sim-${i}-${j}`}
              >
                {s.toFixed(2)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function EmbedPage() {
  usePageTitle("Embed playground");
  const info = useLoad(() => api.get<Info>("/info"), []);
  const models = info.data?.embedding_models ?? [];
  const [model, setModel] = useState("");
  const [text, setText] = useState("A man is playing a flute.\nA man plays the flute.\nThe cat sat on the mat.");
  const [result, setResult] = useState<{ labels: string[]; matrix: number[][]; reply: BatchReply } | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const texts = text.split("\n").map((t) => t.trim()).filter(Boolean);
    if (texts.length === 0) {
      setError("Enter at least one text (one per line).");
      return;
    }
    setBusy(true);
    try {
      const body: Record<string, unknown> = { texts };
      if (model || models[0]) body.model = model || models[0];
      const reply = await api.post<BatchReply>("/api/v1/embed/batch", body);
      setResult({ labels: texts, matrix: similarityMatrix(reply.embeddings), reply });
      setError("");
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <h1>Embed playground</h1>
      {info.data && models.length === 0 && <Status>No embedding models are loaded on this server (embed.models).</Status>}
      <form onSubmit={submit}>
        <Select label="Model" value={model || models[0] || ""} onChange={(e) => setModel(e.target.value)}>
          {models.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </Select>
        <TextArea label="Texts (one per line)" rows={6} value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit" disabled={busy}>
          Embed
        </button>
      </form>
      <ErrorBox error={error || info.error} />
      {result && (
        <>
          <Status>
            {result.labels.length} texts embedded with {result.reply.model ?? (model || models[0])}, dimension {result.reply.dimension}
            {result.reply.processing_time_ms !== undefined ? `, ${result.reply.processing_time_ms.toFixed(1)} ms` : ""}.
          </Status>
          <h2>Cosine similarity</h2>
          <HeatMap labels={result.labels} matrix={result.matrix} />
        </>
      )}
    </section>
  );
}
