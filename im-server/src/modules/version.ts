// XEP-0092 software version; switched off with disabledModules: ["version"]. No OS is told.
import { readFileSync } from 'node:fs';
import type { Host, StanzaEvent } from '../core/host.js';
import { NS, iqResult } from '../core/stanza.js';
import { xml } from '../core/xml.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
export const SERVER_VERSION = pkg.version;

export default function version(host: Host): void {
  host.features.add(NS.version);
  host.hooks.on<StanzaEvent>(`iq-get/host/${NS.version}:query`, (e) => {
    host.reply(e, iqResult(e.stanza, xml('query', { xmlns: NS.version }, xml('name', {}, 'pi-im'), xml('version', {}, SERVER_VERSION))));
    return true;
  });
}
