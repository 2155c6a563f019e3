import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Served by `signoff dev` / `signoff serve` at /console/ (SIGNOFF_CONSOLE_DIR = this dist/).
export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 4000 },
  server: {
    // `npm run dev` beside `scripts/dev`: the API on its default port.
    proxy: { "/graphql": { target: "http://127.0.0.1:8000", ws: true }, "/dev": "http://127.0.0.1:8000" },
  },
  test: { environment: "jsdom" },
});
