// The rendered backup and restore commands, run for real against a SQLite database in WAL mode
// while a writer keeps committing rows, then restored and checked row by row.
import test from "ava";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BackupOptions, renderBackupScript, renderRestoreScript } from "../render/backup";

const WRITER = `
import os, sqlite3, sys, time
db, progress, stop = sys.argv[1:4]
con = sqlite3.connect(db, isolation_level=None, timeout=30)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA synchronous=NORMAL")
con.execute("CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
i = 0
while not os.path.exists(stop):
    batch = 1 if i % 7 else 25
    con.execute("BEGIN IMMEDIATE")
    for _ in range(batch):
        i += 1
        con.execute("INSERT INTO messages(id, body) VALUES (?, ?)", (i, "message %d " % i + "x" * 200))
    con.execute("COMMIT")
    tmp = progress + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(i))
    os.replace(tmp, progress)
`;

function sh(script: string, args: string[] = []) {
  const r = spawnSync("bash", [script, ...args], { encoding: "utf8" });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function sql(db: string, query: string): string {
  return spawnSync("sqlite3", [db, query], { encoding: "utf8" }).stdout.trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const committed = (file: string) => (fs.existsSync(file) ? Number(fs.readFileSync(file, "utf8")) : 0);

function setup() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-backup-"));
  fs.mkdirSync(`${d}/data/db`, { recursive: true });
  fs.mkdirSync(`${d}/data/uploads/ab`, { recursive: true });
  fs.mkdirSync(`${d}/conf`);
  fs.writeFileSync(`${d}/data/uploads/ab/photo.jpg`, Buffer.alloc(64 * 1024, 7));
  fs.writeFileSync(`${d}/data/uploads/notes.txt`, "hello");
  fs.writeFileSync(`${d}/conf/docker-compose.yml`, "services: {}\n");
  const opts: BackupOptions = {
    dataDir: `${d}/data`, configDirs: [`${d}/conf`], target: { type: "local", path: `${d}/target` }, keep: 2, maxAgeDays: 30,
    includeUploads: true, stagingDir: `${d}/staging`, statusFile: `${d}/state/status.json`, logFile: `${d}/log/backup.log`,
    lockFile: `${d}/lock/backup.lock`, dataOwner: `${process.getuid!()}:${process.getgid!()}`,
  };
  fs.writeFileSync(`${d}/backup.sh`, renderBackupScript(opts));
  fs.writeFileSync(`${d}/restore.sh`, renderRestoreScript({ ...opts, stopCommand: `touch ${d}/stopped`, startCommand: `touch ${d}/started` }));
  return { d, opts };
}

test.serial("backup under concurrent writes, then restore: integrity ok and every row committed before the snapshot is there", async (t) => {
  const { d } = setup();
  const db = `${d}/data/db/pi-im.sqlite`;
  const progress = `${d}/progress`;
  const writer = spawn("python3", ["-c", WRITER, db, progress, `${d}/stop-writer`], { stdio: ["ignore", "ignore", "pipe"] });
  let writerErr = "";
  writer.stderr.on("data", (b) => (writerErr += b));
  const exited = new Promise((r) => writer.on("exit", r));
  try {
    while (committed(progress) < 300) await sleep(20);
    t.true(fs.existsSync(`${db}-wal`), "the database is live in WAL mode");

    const before = committed(progress);
    const first = sh(`${d}/backup.sh`);
    const afterFirst = committed(progress);
    t.is(first.code, 0, first.out);
    t.true(afterFirst > before, `the writer kept committing during the backup (${before} -> ${afterFirst})`);
    const status = JSON.parse(fs.readFileSync(`${d}/state/status.json`, "utf8"));
    t.is(status.status, "ok");
    t.is(status.exitCode, 0);

    // Two more backups: retention keeps the newest 2; uploads are hard-linked between them.
    for (let i = 0; i < 2; i++) {
      await sleep(1100);
      const r = sh(`${d}/backup.sh`, ["--quiet"]);
      t.is(r.code, 0, fs.readFileSync(`${d}/log/backup.log`, "utf8"));
    }
    const kept = fs.readdirSync(`${d}/target`).sort();
    t.is(kept.length, 2, `retention keeps 2: ${kept}`);
    t.false(kept.includes(status.backup), "the oldest backup was removed");
    const inode = (b: string) => fs.statSync(`${d}/target/${b}/files/uploads/ab/photo.jpg`).ino;
    t.is(inode(kept[0]!), inode(kept[1]!), "unchanged uploads are hard links");
    for (const b of kept) {
      t.false(fs.existsSync(`${d}/target/${b}/db/db/pi-im.sqlite-wal`), "no WAL file in a backup");
      t.false(fs.existsSync(`${d}/target/${b}/files/db/pi-im.sqlite`), "the live database is never copied");
      t.true(fs.existsSync(`${d}/target/${b}/config${d}/conf/docker-compose.yml`), "config is saved");
    }
    const latestSnapshotRows = Number(sql(`${d}/target/${kept[1]}/db/db/pi-im.sqlite`, "SELECT count(*) FROM messages"));
    const beforeLatest = before; // lower bound: rows committed before the first backup started
    t.true(latestSnapshotRows >= beforeLatest);
  } finally {
    fs.writeFileSync(`${d}/stop-writer`, "");
    await exited;
  }
  t.is(writerErr, "", "the writer never hit an error (the backup did not block it)");
  const final = committed(progress);
  const newest = fs.readdirSync(`${d}/target`).sort().pop()!;
  const snapshotRows = Number(sql(`${d}/target/${newest}/db/db/pi-im.sqlite`, "SELECT count(*) FROM messages"));

  // Lose the data, then restore the newest backup.
  fs.rmSync(`${d}/data/uploads/notes.txt`);
  sql(db, "DELETE FROM messages WHERE id > 10");
  const r = sh(`${d}/restore.sh`, ["--yes", "latest"]);
  t.is(r.code, 0, r.out);
  t.true(fs.existsSync(`${d}/stopped`) && fs.existsSync(`${d}/started`), "the service was stopped and started");
  t.is(sql(db, "PRAGMA integrity_check"), "ok");
  const rows = Number(sql(db, "SELECT count(*) FROM messages"));
  const maxId = Number(sql(db, "SELECT max(id) FROM messages"));
  t.is(rows, snapshotRows, "the restored database is the snapshot");
  t.is(maxId, rows, "no gaps: ids 1..N are all present");
  t.true(rows <= final);
  t.is(fs.readFileSync(`${d}/data/uploads/notes.txt`, "utf8"), "hello", "uploads are restored");
  const aside = fs.readdirSync(d).find((f) => f.startsWith("data.pre-restore-"));
  t.truthy(aside, "the replaced data directory is kept");
});

test.serial("every row committed before a backup starts is in it (repeated under load)", async (t) => {
  const { d } = setup();
  const db = `${d}/data/db/pi-im.sqlite`;
  const progress = `${d}/progress`;
  const writer = spawn("python3", ["-c", WRITER, db, progress, `${d}/stop-writer`], { stdio: "ignore" });
  const exited = new Promise((r) => writer.on("exit", r));
  try {
    while (committed(progress) < 50) await sleep(20);
    for (let i = 0; i < 3; i++) {
      if (i) await sleep(1100);
      const before = committed(progress);
      const r = sh(`${d}/backup.sh`, ["--quiet"]);
      t.is(r.code, 0);
      const name = JSON.parse(fs.readFileSync(`${d}/state/status.json`, "utf8")).backup;
      const snap = `${d}/target/${name}/db/db/pi-im.sqlite`;
      t.is(sql(snap, "PRAGMA integrity_check"), "ok");
      const present = Number(sql(snap, `SELECT count(*) FROM messages WHERE id <= ${before}`));
      t.is(present, before, `backup ${i}: all ${before} rows committed before it started are present`);
    }
  } finally {
    fs.writeFileSync(`${d}/stop-writer`, "");
    await exited;
  }
});

test.serial("a failed backup exits non-zero and says so in the status file; a corrupt backup is not restored", (t) => {
  const { d } = setup();
  fs.renameSync(`${d}/data`, `${d}/gone`);
  const r = sh(`${d}/backup.sh`);
  t.not(r.code, 0);
  const status = JSON.parse(fs.readFileSync(`${d}/state/status.json`, "utf8"));
  t.is(status.status, "failed");
  t.not(status.exitCode, 0);
  t.regex(r.out, /does not exist/);

  fs.renameSync(`${d}/gone`, `${d}/data`);
  spawnSync("sqlite3", [`${d}/data/db/pi-im.sqlite`, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);"]);
  t.is(sh(`${d}/backup.sh`).code, 0);
  const name = fs.readdirSync(`${d}/target`)[0]!;
  fs.appendFileSync(`${d}/target/${name}/db/db/pi-im.sqlite`, "tampered");
  const restore = sh(`${d}/restore.sh`, ["--yes", name]);
  t.not(restore.code, 0);
  t.regex(restore.out, /corrupt/);
  t.false(fs.existsSync(`${d}/stopped`), "the service is not stopped for a bad backup");
  t.is(sh(`${d}/restore.sh`, ["--yes", "nonsense"]).code, 64);
  t.regex(sh(`${d}/restore.sh`, ["--list"]).out, new RegExp(name));
});
