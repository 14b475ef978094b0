// @vitest-environment happy-dom
// Component tests of the runs table's filter editor (FilterBox): token colouring, the server's
// error shown with its position (caret under the text, "at character N", aria-invalid), and
// identifier suggestions (click and ArrowDown), Enter applying the filter.
import { afterEach, describe, expect, it, vi } from "vitest";
import { useState } from "react";
import { FilterBox } from "../pages/Track";
import { parseFilterError, type FilterError } from "../lib/filter";
import { click, keyDown, render, typeInto, type Rendered } from "../test/render";

function Harness({ initial = "", idents = [] as string[], error = null as FilterError | null, onSubmit = (_v: string) => {} }) {
  const [value, setValue] = useState(initial);
  return <FilterBox value={value} onChange={setValue} onSubmit={() => onSubmit(value)} idents={idents} error={error} />;
}

let view: Rendered | null = null;
afterEach(() => {
  view?.unmount();
  view = null;
});
const input = () => view!.container.querySelector<HTMLInputElement>("#run-filter")!;
const suggestions = () => Array.from(view!.container.querySelectorAll<HTMLButtonElement>('[aria-label="Suggestions"] button')).map((b) => b.textContent);

describe("FilterBox", () => {
  it("is a labelled input described by its help and error texts", () => {
    view = render(<Harness />);
    const label = view.container.querySelector("label")!;
    expect(label.textContent).toBe("Filter runs");
    expect(label.getAttribute("for")).toBe("run-filter");
    expect(input().getAttribute("aria-describedby")).toBe("run-filter-help run-filter-error");
    expect(input().hasAttribute("aria-invalid")).toBe(false);
    expect(view.container.querySelector('[role="alert"]')).toBeNull();
  });

  it("colours the tokens of what is typed", () => {
    view = render(<Harness />);
    typeInto(input(), "params.lr < 0.01 and status = 'done'");
    const toks = Array.from(view.container.querySelectorAll(".tokens span")).filter((s) => s.textContent!.trim() !== "");
    expect(toks.map((s) => [s.className, s.textContent])).toEqual([
      ["tok-ident", "params.lr"], ["tok-op", "<"], ["tok-number", "0.01"], ["tok-keyword", "and"],
      ["tok-ident", "status"], ["tok-op", "="], ["tok-string", "'done'"],
    ]);
  });

  it("shows the server's error with a caret at its position and marks the box invalid", () => {
    const src = "params.lr < and status = 'x'";
    const error = parseFilterError("filter: expected a value at position 12", src);
    expect(error).toEqual({ message: "expected a value", position: 12 });
    view = render(<Harness initial={src} error={error} />);
    const alert = view.container.querySelector('[role="alert"]')!;
    expect(alert.id).toBe("run-filter-error");
    expect(alert.textContent).toContain("Filter error: expected a value (at character 13)");
    const caret = alert.querySelector("pre.caret")!.textContent!.split("\n");
    expect(caret[0]).toBe(src);
    expect(caret[1]).toBe(" ".repeat(12) + "^");
    expect(src[caret[1].indexOf("^")]).toBe("a"); // the caret sits under "and"
    expect(input().getAttribute("aria-invalid")).toBe("true");
  });

  it("converts the server's UTF-8 byte offset so the caret lands under the right character", () => {
    const src = "name = 'héllo' oops";
    const error = parseFilterError("filter: unexpected identifier at position 16", src); // é is 2 bytes
    view = render(<Harness initial={src} error={error} />);
    const caret = view.container.querySelector("pre.caret")!.textContent!.split("\n")[1];
    expect(src.slice(caret.indexOf("^"))).toBe("oops");
    expect(view.container.textContent).toContain("(at character 16)");
  });

  it("shows an error without a position without a caret", () => {
    view = render(<Harness initial="x" error={{ message: "too long", position: null }} />);
    expect(view.container.querySelector("pre.caret")).toBeNull();
    expect(view.container.querySelector('[role="alert"]')!.textContent).toBe("Filter error: too long");
  });

  it("suggests attributes and known keys for the word at the caret; a click applies one", () => {
    view = render(<Harness idents={["params.lr", "params.layers", "metrics.loss"]} />);
    expect(suggestions()).toEqual([]);
    typeInto(input(), "params.l");
    expect(suggestions()).toEqual(["params.lr", "params.layers"]);
    const raf = vi.spyOn(globalThis, "requestAnimationFrame").mockImplementation((fn) => {
      fn(0);
      return 0;
    });
    click(view.container.querySelector('[aria-label="Suggestions"] button')!);
    raf.mockRestore();
    expect(input().value).toBe("params.lr");
    expect(suggestions()).toEqual([]); // the word is complete
  });

  it("ArrowDown takes the first suggestion; Enter applies the filter", () => {
    const onSubmit = vi.fn();
    view = render(<Harness idents={["metrics.loss"]} onSubmit={onSubmit} />);
    typeInto(input(), "metrics.lo");
    keyDown(input(), "ArrowDown");
    expect(input().value).toBe("metrics.loss");
    typeInto(input(), "metrics.loss < 0.5");
    keyDown(input(), "Enter");
    expect(onSubmit).toHaveBeenCalledWith("metrics.loss < 0.5");
  });
});
