// `npm run -w load-tests prosody`: a throw-away Prosody to try the runner against; Ctrl-C stops it.
import { startProsody } from './prosody.js';

const p = await startProsody({ logLevel: 'warn' });
process.stdout.write(
  `prosody pid ${p.pid} in ${p.dir}\n` +
    `try: npm run load -- --host 127.0.0.1 --port ${p.c2sPort} --domain ${p.domain} --ws ${p.wsUrl} --tls-ca ${p.caFile} --users 20 --duration 20s\n`,
);
const stop = () => void p.stop().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
