/**
 * Vite for the example page: nexgrad's optional Node-only packages (sharp for image files,
 * webgpu for Dawn) are loaded lazily by the library and never in a browser, so they stay out
 * of the bundle.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: { rollupOptions: { external: ['sharp', 'webgpu'] } },
  optimizeDeps: { exclude: ['sharp', 'webgpu'] },
});
