// tsx testing/lib/copy-project.ts DEST: copyProject for shell suites (see project.ts).
import { copyProject } from "./project.js";

const dest = process.argv[2];
if (!dest) {
  console.error("usage: tsx testing/lib/copy-project.ts DEST");
  process.exit(2);
}
copyProject(dest);
