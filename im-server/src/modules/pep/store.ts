// PEP persistence: nodes (with their configuration) and items per account, plus the verified
// XEP-0115 caps cache, in the module's own tables on the backend-neutral store (SQLite or
// PostgreSQL), written through the shared group commit.
import { sql } from 'kysely';
import type { Backend, ModuleDb } from '../../storage/store.js';
import { type NodeConfig } from './config.js';

export const PEP_MIGRATIONS = [
  `CREATE TABLE pep_nodes (owner TEXT NOT NULL, node TEXT NOT NULL, config TEXT NOT NULL, PRIMARY KEY (owner, node));
   CREATE TABLE pep_items (owner TEXT NOT NULL, node TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
     payload TEXT NOT NULL, PRIMARY KEY (owner, node, id));
   CREATE INDEX pep_items_seq ON pep_items (owner, node, seq);
   CREATE TABLE pep_caps (ver TEXT PRIMARY KEY, features TEXT NOT NULL);`,
] as const;

export interface PepTables {
  pep_nodes: { owner: string; node: string; config: string };
  pep_items: { owner: string; node: string; id: string; seq: number; payload: string };
  pep_caps: { ver: string; features: string };
}

export interface StoredItem { id: string; payload: string; seq: number }

const toItem = (r: { id: string; payload: string; seq: number | string }): StoredItem => ({ id: r.id, payload: r.payload, seq: Number(r.seq) });

export class PepStore {
  private constructor(private readonly db: ModuleDb<PepTables>) {}

  static async open(backend: Backend): Promise<PepStore> {
    return new PepStore(await backend.open<PepTables>('pep', PEP_MIGRATIONS));
  }

  async getNode(owner: string, node: string): Promise<NodeConfig | undefined> {
    const r = await this.db.readOne(this.db.q.selectFrom('pep_nodes').select('config').where('owner', '=', owner).where('node', '=', node));
    return r === undefined ? undefined : JSON.parse(r.config) as NodeConfig;
  }

  async nodes(owner: string): Promise<{ node: string; config: NodeConfig }[]> {
    const rows = await this.db.read(this.db.q.selectFrom('pep_nodes').select(['node', 'config']).where('owner', '=', owner).orderBy('node'));
    return rows.map((r) => ({ node: r.node, config: JSON.parse(r.config) as NodeConfig }));
  }

  async countNodes(owner: string): Promise<number> {
    const r = await this.db.readOne(this.db.q.selectFrom('pep_nodes').select((eb) => eb.fn.countAll<number>().as('n')).where('owner', '=', owner));
    return Number(r?.n ?? 0);
  }

  /** Deletes the node's items but its newest `keep` (by seq). */
  private trim(owner: string, node: string, keep: number) {
    const { q } = this.db;
    return q.deleteFrom('pep_items').where('owner', '=', owner).where('node', '=', node)
      .where('seq', 'not in', q.selectFrom('pep_items').select('seq').where('owner', '=', owner).where('node', '=', node)
        .orderBy('seq', 'desc').limit(keep));
  }

  /** Creates or reconfigures a node; trims its items to the (new) limit. Settles when durable. */
  async putNode(owner: string, node: string, config: NodeConfig, keep: number): Promise<void> {
    await this.db.write(this.upsertNode(owner, node, config), this.trim(owner, node, keep));
  }

  private upsertNode(owner: string, node: string, config: NodeConfig) {
    return this.db.q.insertInto('pep_nodes').values({ owner, node, config: JSON.stringify(config) })
      .onConflict((oc) => oc.columns(['owner', 'node']).doUpdateSet({ config: (eb) => eb.ref('excluded.config') }));
  }

  async deleteNode(owner: string, node: string): Promise<void> {
    const { q } = this.db;
    await this.db.write(
      q.deleteFrom('pep_nodes').where('owner', '=', owner).where('node', '=', node),
      q.deleteFrom('pep_items').where('owner', '=', owner).where('node', '=', node));
  }

  async purge(owner: string, node: string): Promise<void> {
    await this.db.write(this.db.q.deleteFrom('pep_items').where('owner', '=', owner).where('node', '=', node));
  }

  /** Stores an item as the node's newest (replacing one with the same id, which then becomes the
   * newest) and keeps the newest `keep`. The seq is one more than the node's highest, computed in
   * the statement itself, so no counter is kept in memory (nor shared between servers). With
   * `create`, the node is created (or reconfigured) in the same atomic write. */
  async publish(owner: string, node: string, id: string, payload: string, keep: number, create?: NodeConfig): Promise<void> {
    const { q } = this.db;
    const next = sql<number>`(SELECT coalesce(max(seq), 0) + 1 FROM pep_items WHERE owner = ${owner} AND node = ${node})`;
    await this.db.write(
      ...(create ? [this.upsertNode(owner, node, create)] : []),
      q.insertInto('pep_items').values({ owner, node, id, seq: next, payload })
        .onConflict((oc) => oc.columns(['owner', 'node', 'id']).doUpdateSet({
          seq: (eb) => eb.ref('excluded.seq'), payload: (eb) => eb.ref('excluded.payload'),
        })),
      this.trim(owner, node, keep));
  }

  async retract(owner: string, node: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.write(this.db.q.deleteFrom('pep_items').where('owner', '=', owner).where('node', '=', node).where('id', 'in', ids));
  }

  async item(owner: string, node: string, id: string): Promise<StoredItem | undefined> {
    const r = await this.db.readOne(this.db.q.selectFrom('pep_items').select(['id', 'payload', 'seq'])
      .where('owner', '=', owner).where('node', '=', node).where('id', '=', id));
    return r === undefined ? undefined : toItem(r);
  }

  /** The newest `max` items, oldest first. */
  async latest(owner: string, node: string, max: number): Promise<StoredItem[]> {
    if (max <= 0) return [];
    const rows = await this.db.read(this.db.q.selectFrom('pep_items').select(['id', 'payload', 'seq'])
      .where('owner', '=', owner).where('node', '=', node).orderBy('seq', 'desc').limit(max));
    return rows.map(toItem).reverse();
  }

  /** Everything the account kept (account removal). */
  async deleteUser(owner: string): Promise<void> {
    const { q } = this.db;
    await this.db.write(q.deleteFrom('pep_nodes').where('owner', '=', owner), q.deleteFrom('pep_items').where('owner', '=', owner));
  }

  async caps(ver: string): Promise<string[] | undefined> {
    const r = await this.db.readOne(this.db.q.selectFrom('pep_caps').select('features').where('ver', '=', ver));
    return r === undefined ? undefined : JSON.parse(r.features) as string[];
  }

  async putCaps(ver: string, features: string[]): Promise<void> {
    await this.db.write(this.db.q.insertInto('pep_caps').values({ ver, features: JSON.stringify(features) })
      .onConflict((oc) => oc.column('ver').doUpdateSet({ features: (eb) => eb.ref('excluded.features') })));
  }
}
