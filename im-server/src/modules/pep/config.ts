// Node configuration (XEP-0060 §8.2 pubsub#node_config): defaults, the form we send, and
// parsing of submitted forms (configure and publish-options).
import { Element, xml } from '../../core/xml.js';

export const NS_DATA = 'jabber:x:data';
export const NODE_CONFIG = 'http://jabber.org/protocol/pubsub#node_config';
export const PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';

export const ACCESS_MODELS = ['open', 'presence', 'roster', 'whitelist'] as const;
export type AccessModel = typeof ACCESS_MODELS[number];
export const SEND_LAST = ['never', 'on_sub', 'on_sub_and_presence'] as const;
export type SendLast = typeof SEND_LAST[number];

export interface NodeConfig {
  accessModel: AccessModel;
  /** A number, or 'max' (the server's limit, which may change). */
  maxItems: number | 'max';
  persistItems: boolean;
  sendLast: SendLast;
  notifyRetract: boolean;
  rosterGroups: string[];
  title: string;
}

export const DEFAULT_CONFIG: NodeConfig = {
  accessModel: 'presence', maxItems: 1, persistItems: true, sendLast: 'on_sub_and_presence',
  notifyRetract: true, rosterGroups: [], title: '',
};

/** How many items a node keeps. Non-persistent nodes keep the last one only (for send-last). */
export function keepCount(c: NodeConfig, serverMax: number): number {
  if (!c.persistItems) return 1;
  return c.maxItems === 'max' ? serverMax : Math.min(c.maxItems, serverMax);
}

/** The submitted fields of a data form: var -> values (FORM_TYPE left out). */
export function formFields(x: Element): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of x.getChildren('field')) {
    const v = f.attrs.var;
    if (!v || v === 'FORM_TYPE') continue;
    out.set(v, f.getChildren('value').map((e) => e.text()));
  }
  return out;
}

export function formType(x: Element): string | undefined {
  return x.getChildren('field').find((f) => f.attrs.var === 'FORM_TYPE')?.getChildText('value');
}

const bool = (s: string | undefined): boolean | undefined => (s === '1' || s === 'true' ? true : s === '0' || s === 'false' ? false : undefined);

/** Applies submitted fields to a config. Returns an error text for a bad value or (when strict) an unknown field. */
export function applyFields(base: NodeConfig, fields: Map<string, string[]>, serverMax: number, strict: boolean): NodeConfig | string {
  const c: NodeConfig = { ...base, rosterGroups: [...base.rosterGroups] };
  for (const [name, values] of fields) {
    const v = values[0];
    switch (name) {
      case 'pubsub#access_model':
        if (!ACCESS_MODELS.includes(v as AccessModel)) return `pubsub#access_model must be one of ${ACCESS_MODELS.join(', ')}`;
        c.accessModel = v as AccessModel;
        break;
      case 'pubsub#max_items': {
        if (v === 'max') { c.maxItems = 'max'; break; }
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > serverMax) return `pubsub#max_items must be 1..${serverMax} or 'max'`;
        c.maxItems = n;
        break;
      }
      case 'pubsub#persist_items': case 'pubsub#notify_retract': {
        const b = bool(v);
        if (b === undefined) return `${name} must be a boolean`;
        if (name === 'pubsub#persist_items') c.persistItems = b; else c.notifyRetract = b;
        break;
      }
      case 'pubsub#send_last_published_item':
        if (!SEND_LAST.includes(v as SendLast)) return `pubsub#send_last_published_item must be one of ${SEND_LAST.join(', ')}`;
        c.sendLast = v as SendLast;
        break;
      case 'pubsub#roster_groups_allowed':
        c.rosterGroups = values.filter((g) => g !== '');
        break;
      case 'pubsub#title':
        c.title = (v ?? '').slice(0, 1024);
        break;
      default:
        // Clients fill in what a form offered; fields we never offer are ignored in a configure.
        if (strict) return `unsupported option ${name}`;
    }
  }
  return c;
}

/** Publish-options as preconditions (XEP-0060 §7.1.5): the existing node must match each field. */
export function preconditionsMet(existing: NodeConfig, fields: Map<string, string[]>, serverMax: number): string | undefined {
  const wanted = applyFields(existing, fields, serverMax, true);
  if (typeof wanted === 'string') return wanted;
  // 'max' and the server's limit are the same thing.
  const norm = (c: NodeConfig, key: keyof NodeConfig): string =>
    JSON.stringify(key === 'maxItems' && c.maxItems === serverMax ? 'max' : c[key]);
  for (const name of fields.keys()) {
    const key = FIELD_KEYS[name]!;
    if (norm(wanted, key) !== norm(existing, key)) {
      return `${name} of the existing node is ${String(existing[key])}, not ${String(wanted[key])}`;
    }
  }
  return undefined;
}

const FIELD_KEYS: Record<string, keyof NodeConfig> = {
  'pubsub#access_model': 'accessModel', 'pubsub#max_items': 'maxItems', 'pubsub#persist_items': 'persistItems',
  'pubsub#send_last_published_item': 'sendLast', 'pubsub#notify_retract': 'notifyRetract',
  'pubsub#roster_groups_allowed': 'rosterGroups', 'pubsub#title': 'title',
};

const field = (v: string, type: string, label: string, values: string[], options?: readonly string[]): Element =>
  xml('field', { var: v, type, label: label || undefined },
    ...(options ?? []).map((o) => xml('option', {}, xml('value', {}, o))),
    ...values.map((val) => xml('value', {}, val)));

/** The configuration form of a node (type 'form'), as XEP-0060 §8.2 shows. */
export function configForm(c: NodeConfig): Element {
  return xml('x', { xmlns: NS_DATA, type: 'form' },
    field('FORM_TYPE', 'hidden', '', [NODE_CONFIG]),
    field('pubsub#title', 'text-single', 'A friendly name for the node', [c.title]),
    field('pubsub#access_model', 'list-single', 'Who may subscribe and retrieve items', [c.accessModel], ACCESS_MODELS),
    field('pubsub#roster_groups_allowed', 'list-multi', 'Roster groups allowed (access model roster)', c.rosterGroups),
    field('pubsub#max_items', 'text-single', "Max number of items to keep ('max' for the server's limit)", [String(c.maxItems)]),
    field('pubsub#persist_items', 'boolean', 'Persist items to storage', [c.persistItems ? '1' : '0']),
    field('pubsub#send_last_published_item', 'list-single', 'When to send the last published item', [c.sendLast], SEND_LAST),
    field('pubsub#notify_retract', 'boolean', 'Notify subscribers when items are removed', [c.notifyRetract ? '1' : '0']));
}
