// Runs a command with every server under test on one real PostgreSQL (started here, stopped
// after): `tsx test/with-postgres.ts npx ava` runs the whole behaviour suite on PostgreSQL.
import { spawn } from 'node:child_process';
import { startPostgres } from './postgres-server.js';

const [cmd, ...args] = process.argv.slice(2);
if (!cmd) { console.error('usage: tsx test/with-postgres.ts COMMAND [ARGS...]'); process.exit(2); }
const pg = await startPostgres();
console.log(`PostgreSQL for the tests: ${pg.url}`);
const child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, PI_IM_TEST_DB: 'postgres', PI_IM_TEST_PG_URL: pg.url } });
const code = await new Promise<number>((resolve) => child.once('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await pg.destroy();
process.exit(code);
