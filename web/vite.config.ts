// Vite build of the Atrium web UI into dist/ (served by `atrium serve` at /), and Vitest's
// configuration for the unit tests under src/**/*.test.ts.
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: {
    // `npm run dev` against a local `atrium serve` (make run) on port 8080.
    proxy: { "/api": "http://127.0.0.1:8080", "/info": "http://127.0.0.1:8080", "/metrics": "http://127.0.0.1:8080", "/health": "http://127.0.0.1:8080", "/v1": "http://127.0.0.1:8080" },
  },
  test: { include: ["src/**/*.test.ts", "src/**/*.test.tsx"], environment: "node" },
});
