import { defineConfig } from "vitest/config";

export default defineConfig({
  // Legacy decorators with metadata for tsyringe; set here as well as in
  // tsconfig so that a file outside tsconfig's include still compiles.
  oxc: { decorator: { legacy: true, emitDecoratorMetadata: true } },
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["./test/setup.ts"],
    environment: "node",
    testTimeout: 60_000,
  },
});
