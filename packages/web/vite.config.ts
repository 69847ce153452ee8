import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

// Built into the server's dist/web, which it serves at `/` (src/http/web-client.ts). Assets get content-hashed names
// under assets/, so the server can cache them for a year while index.html is revalidated on every load.
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: '../../dist/web',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: true,
  },
  server: {
    // `npm run dev -w @parley/web` proxies the API and the WebSocket to a server started with `npm start`.
    proxy: {
      '/api': 'http://localhost:8080',
      '/ws': { target: 'ws://localhost:8080', ws: true },
    },
  },
});
