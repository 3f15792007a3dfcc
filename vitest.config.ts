import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    // Tests that build real mounts and start real daemons share the kernel's
    // loop devices and mount table; running files one at a time keeps them
    // from racing each other for loop devices and keeps timings honest.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
