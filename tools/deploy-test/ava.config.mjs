export default {
  files: ["*.test.ts"],
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  timeout: "40m",
  serial: true,
  verbose: true,
};
