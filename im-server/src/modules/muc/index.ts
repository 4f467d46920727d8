// XEP-0045 multi-user chat on conference.<domain> (with XEP-0410 self-ping and XEP-0249 direct
// invitations, which clients send each other). Hooks for other modules:
//   muc-message {room, stanza, occupant}   fired before a groupchat message with a body or subject is
//                                          broadcast; handlers may add children (e.g. <stanza-id>)
//   muc-mam-query {event, room, allowed}   an archive query to a room; true when handled
//   muc-room-destroyed {room}              a room is gone (destroyed, or temporary and empty)
import type { Host, SessionEvent } from '../../core/host.js';
import { removeSession } from './occupants.js';
import { MucService } from './service.js';

export default async function muc(host: Host): Promise<void> {
  const svc = await MucService.start(host);
  host.addComponent(svc.domain, svc);

  // A session that ends leaves its rooms (its unavailable presence may not have reached them).
  host.hooks.on<SessionEvent>('session-closed', ({ session }) => {
    for (const room of svc.roomsOf(session.jid.full)) {
      const occ = room.occupantOf(session.jid.full);
      if (occ) removeSession(svc, room, occ, session.jid.full, {});
    }
  });

  host.hooks.on<{ username: string }>('account-removing', ({ username }) => {
    const bare = `${username}@${host.domain}`;
    for (const room of svc.rooms.values()) if (room.affiliations.has(bare)) room.setAffiliation(bare, 'none');
  });
}
