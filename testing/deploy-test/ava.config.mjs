export default {
  files: ["testing/deploy-test/*.test.ts"],
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  timeout: "40m",
  serial: true,
  workerThreads: false,
  // The steps are one story: after a failed step the rest only waste emulated minutes.
  failFast: true,
  verbose: true,
};
