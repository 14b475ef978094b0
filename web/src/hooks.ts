// Small data hooks shared by the pages.
import { useCallback, useEffect, useRef, useState } from "react";
import { errorText } from "./api/client";

/** Loads `fn()` on mount and whenever `deps` change; `reload` re-runs it. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(true);
  const gen = useRef(0);
  const reload = useCallback(() => {
    const g = ++gen.current;
    setLoading(true);
    fn().then(
      (d) => {
        if (g !== gen.current) return;
        setData(d);
        setError("");
        setLoading(false);
      },
      (e) => {
        if (g !== gen.current) return;
        setError(errorText(e));
        setLoading(false);
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  return { data, error, loading, reload, setData };
}

/** Calls `fn` every `ms` while mounted (and `enabled`). */
export function useInterval(fn: () => void, ms: number, enabled = true) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!enabled) return;
    const id = setInterval(() => ref.current(), ms);
    return () => clearInterval(id);
  }, [ms, enabled]);
}

/** Sets document.title and moves focus to the page's h1 on navigation (screen readers). */
export function usePageTitle(title: string) {
  useEffect(() => {
    document.title = `${title} · Atrium`;
    const h = document.querySelector<HTMLElement>("main h1");
    if (h) {
      h.tabIndex = -1;
      h.focus({ preventScroll: true });
    }
  }, [title]);
}
