// The modules a host loads, in order. Adding a feature means adding a file and a line here.
import type { Host } from '../core/host.js';
import blocking from './blocking.js';
import carbons from './carbons.js';
import contact from './contact.js';
import csi from './csi.js';
import disco from './disco.js';
import hostmeta from './hostmeta.js';
import mam from './mam/index.js';
import message from './message.js';
import muc from './muc/index.js';
import offline from './offline.js';
import pep from './pep/index.js';
import ping from './ping.js';
import presence from './presence.js';
import privateStorage from './private.js';
import register from './register.js';
import roster from './roster.js';
import upload from './upload/index.js';
import vcard from './vcard.js';
import version from './version.js';

/** A module's start: hooks, features, and its store (opening it may wait for the database). */
export type ModuleInit = (host: Host) => void | Promise<void>;

export const MODULES: Record<string, ModuleInit> = { roster, presence, message, offline, register, disco, ping, vcard, version, muc, mam, carbons, upload, csi, blocking, private: privateStorage, hostmeta, contact, pep };
const ALWAYS = new Set(['roster', 'presence', 'message']);

export async function loadModules(host: Host): Promise<string[]> {
  const off = new Set<string>(host.config.disabledModules);
  const loaded: string[] = [];
  for (const [name, init] of Object.entries(MODULES)) {
    if (off.has(name) && !ALWAYS.has(name)) continue;
    await init(host);
    loaded.push(name);
  }
  return loaded;
}
