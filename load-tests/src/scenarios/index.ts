import type { Scenario } from '../scenario.js';
import { chat } from './chat.js';
import { roster } from './roster.js';
import { connect, idle } from './connect.js';
import { groupchat } from './groupchat.js';
import { upload } from './upload.js';

export const SCENARIOS: Record<string, Scenario> = { chat, roster, connect, idle, upload, groupchat };

export interface MixEntry {
  scenario: Scenario;
  weight: number;
}

/** `chat` or `chat:70,roster:20,connect:10` (weights are relative). */
export function parseMix(s: string): MixEntry[] {
  const mix = s.split(',').map((part) => {
    const [name, w] = part.split(/[:=]/).map((x) => x.trim());
    const scenario = SCENARIOS[name ?? ''];
    if (!scenario) {
      throw new Error(`unknown scenario "${name}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
    }
    const weight = w === undefined ? 1 : Number(w);
    if (!(weight > 0)) throw new Error(`bad weight "${w}" for scenario ${name}: use a positive number`);
    return { scenario, weight };
  });
  return mix;
}

/**
 * Scenario of VU `i`: smooth weighted round robin, so any prefix of VUs (a ramp) follows the
 * weights as closely as integers allow, deterministically.
 */
export function assignScenarios(mix: MixEntry[], n: number): Scenario[] {
  const total = mix.reduce((a, m) => a + m.weight, 0);
  const current = mix.map(() => 0);
  const out: Scenario[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 0; j < mix.length; j++) {
      current[j]! += mix[j]!.weight;
      if (current[j]! > current[best]!) best = j;
    }
    current[best]! -= total;
    out.push(mix[best]!.scenario);
  }
  return out;
}
