// The meeting's chat: short text messages between the pages, carried by LiveKit as reliable
// data on the `edgemeet.chat` topic, so they cost the edge nothing. LiveKit stamps each packet
// with its sender's identity, so a name cannot be forged; a packet with no sender is the
// server's (the backend's notices, which `notices.ts` shows) and is never chat. In an
// end-to-end encrypted room each message is sealed with AES-GCM under a key derived from the
// room's key (HKDF-SHA-256), with its sender's identity and an id inside: LiveKit can neither
// read one nor make one up, nor pass one off as another participant's, nor show one twice;
// what does not open with the key (sent in the clear, or under another key) is not shown. It
// can still hold messages back, or deliver them to some pages only. Who may write is LiveKit's `canPublishData`: the room's `allow_chat`, and
// a moderator's chat lock, which LiveKit tells the page about as it happens. Messages live as
// long as the page: one who joins later does not see earlier ones.
//
// A message may go to one participant only (plugNmeet's private chat): LiveKit delivers it to
// that participant alone (`destinationIdentities`), and it says whom it is for, so the page
// marks it private. A moderator's `privateChat` lock (in the user's metadata; LiveKit has no
// such right, so the page keeps it) takes the choice away from everyone but moderators.

import { ICONS, announce, controlButton, h } from './dom';

/** The topic chat messages travel on. */
export const CHAT_TOPIC = 'edgemeet.chat';
/** Longest message, in characters (a reliable data packet carries far more). */
export const MAX_MESSAGE_CHARS = 1000;
/** Messages kept on screen; older ones drop off. */
const MOST_KEPT = 200;

/** A chat message: its text, and whom it is for when it is private (their identity). */
export interface ChatMessage {
  text: string;
  to?: string;
}

/** How messages travel: as they are, or sealed with the room's key. */
export interface ChatCipher {
  /** The packet for a message `from` (this page's identity) sends. */
  seal(message: ChatMessage, from: string): Promise<Uint8Array<ArrayBuffer>>;
  /** The message in a packet LiveKit says `sender` sent, or `undefined` for anything else. */
  open(payload: Uint8Array, sender: string): Promise<ChatMessage | undefined>;
}

interface Message {
  text: string;
  to?: string;
  from?: string;
  id?: string;
}

function readMessage(bytes: Uint8Array): Message | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown> | null;
    if (typeof value?.text !== 'string') return undefined;
    const text = value.text.trim().slice(0, MAX_MESSAGE_CHARS);
    if (!text) return undefined;
    return {
      text,
      to: typeof value.to === 'string' && value.to ? value.to : undefined,
      from: typeof value.from === 'string' ? value.from : undefined,
      id: typeof value.id === 'string' ? value.id : undefined,
    };
  } catch {
    return undefined;
  }
}

function messageBytes(message: Message): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify(message));
}

/** Messages as they are, in a room that is not end-to-end encrypted (LiveKit's stamp names
 * the sender). */
export const PLAIN_CHAT: ChatCipher = {
  seal: ({ text, to }) => Promise.resolve(messageBytes({ text, to })),
  open: (payload) => {
    const message = readMessage(payload);
    return Promise.resolve(message && { text: message.text, to: message.to });
  },
};

/** Ids of sealed messages kept to refuse a repeat (the oldest are let go past this). */
const IDS_KEPT = 2000;

/** The length of AES-GCM's nonce, which leads each sealed packet. */
const NONCE_BYTES = 12;

/** Messages sealed with AES-GCM under a key derived from the room's end-to-end key. */
export async function sealedChat(roomKey: string): Promise<ChatCipher> {
  const material = await crypto.subtle.importKey('raw', new TextEncoder().encode(roomKey), 'HKDF', false, [
    'deriveKey',
  ]);
  const key = await crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new TextEncoder().encode('edgemeet chat v1') },
    material,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
  const seen = new Set<string>();
  return {
    async seal({ text, to }, from) {
      const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
      const message = messageBytes({ text, to, from, id: crypto.randomUUID() });
      const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce }, key, message);
      const packet = new Uint8Array(NONCE_BYTES + sealed.byteLength);
      packet.set(nonce);
      packet.set(new Uint8Array(sealed), NONCE_BYTES);
      return packet;
    },
    async open(payload, sender) {
      if (payload.length <= NONCE_BYTES) return undefined;
      let message: Message | undefined;
      try {
        const opened = await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: payload.slice(0, NONCE_BYTES) },
          key,
          payload.slice(NONCE_BYTES),
        );
        message = readMessage(new Uint8Array(opened));
      } catch {
        return undefined;
      }
      // Sent by whom LiveKit says, and not seen before.
      if (!message || message.from !== sender || !message.id || seen.has(message.id)) return undefined;
      seen.add(message.id);
      if (seen.size > IDS_KEPT) seen.delete(seen.values().next().value as string);
      return { text: message.text, to: message.to };
    },
  };
}

export class Chat {
  readonly el = h('section', { id: 'chat', class: 'chat', 'aria-labelledby': 'chat-title', hidden: true });
  readonly button = controlButton('toggle-chat', 'Show chat', 'Chat', ICONS.chat, 'ctl-chat');
  private readonly title = h('h2', { id: 'chat-title', tabindex: -1 }, 'Chat');
  private readonly log = h('ol', { class: 'chat-log', role: 'log', 'aria-live': 'polite' });
  private readonly empty = h('p', { class: 'chat-empty' }, 'No messages yet.');
  private readonly input = h('textarea', {
    id: 'chat-input',
    rows: 2,
    maxlength: MAX_MESSAGE_CHARS,
    'aria-label': 'Message to everyone',
    placeholder: 'Message to everyone',
  });
  private readonly to = h('select', { id: 'chat-to', 'aria-label': 'Send to' }, h('option', { value: '' }, 'Everyone'));
  private readonly sendButton = h('button', { id: 'chat-send', type: 'submit', class: 'primary' }, 'Send');
  private readonly locked = h('p', { class: 'chat-locked', hidden: true }, 'A moderator has turned off chat for you.');
  private readonly error = h('p', { class: 'confirm-error', role: 'alert', hidden: true });
  private readonly badge = h('span', { class: 'ctl-badge', hidden: true });
  private unread = 0;
  private mayWrite = true;
  /** Who a private message may go to: identity → name. */
  private recipients = new Map<string, string>();

  /** `send`: publishes a message (rejects when it could not); `mayWrite`: whether this user may
   * write now. */
  constructor(
    private readonly send: (message: ChatMessage) => Promise<void>,
    mayWrite: boolean,
  ) {
    this.button.setAttribute('aria-expanded', 'false');
    this.button.setAttribute('aria-controls', 'chat');
    this.button.append(this.badge);
    this.button.addEventListener('click', () => this.toggle());
    this.to.addEventListener('change', () => this.renderTo());
    const form = h('form', { class: 'chat-form' }, this.to, this.input, this.sendButton);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
    // Enter sends; Shift+Enter starts a new line.
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        void this.submit();
      }
    });
    this.el.append(this.title, this.empty, this.log, this.locked, this.error, form);
    this.setMayWrite(mayWrite);
  }

  /** Whether this user may write (LiveKit's word on it, which a moderator's lock changes). */
  setMayWrite(may: boolean): void {
    this.mayWrite = may;
    this.input.disabled = !may;
    this.sendButton.disabled = !may;
    this.locked.hidden = may;
  }

  /** Who else is in the meeting and may get a private message (identity → name). */
  setRecipients(people: Map<string, string>): void {
    this.recipients = people;
    const chosen = this.to.value;
    this.to.replaceChildren(
      h('option', { value: '' }, 'Everyone'),
      ...[...people].map(([identity, name]) => h('option', { value: identity }, name)),
    );
    this.to.value = people.has(chosen) ? chosen : '';
    this.renderTo();
  }

  /** Whether this user may write to one participant only (a moderator's `privateChat` lock). */
  setMayWritePrivately(may: boolean): void {
    this.to.disabled = !may;
    if (!may) this.to.value = '';
    this.renderTo();
  }

  private renderTo(): void {
    const name = this.recipients.get(this.to.value);
    const placeholder = name ? `Private message to ${name}` : 'Message to everyone';
    this.input.placeholder = placeholder;
    this.input.setAttribute('aria-label', placeholder);
  }

  /** A message `name` sent (to this user only, when `privately`). */
  heard(name: string, text: string, privately = false): void {
    this.add(privately ? `${name} (privately)` : name, text, false, privately);
    if (this.el.hidden) {
      this.unread++;
      this.badge.textContent = String(this.unread);
      this.badge.hidden = false;
      this.button.setAttribute('aria-label', `Show chat, ${this.unread} unread`);
    }
    // The open panel's log reads new messages out itself.
    if (this.el.hidden) announce(`${name} says: ${text}`);
  }

  private add(name: string, text: string, mine: boolean, privately = false): void {
    const item = h(
      'li',
      { class: 'chat-message', 'data-mine': mine ? 'true' : null, 'data-private': privately ? 'true' : null },
      h('span', { class: 'chat-from' }, mine ? name || 'You' : name),
      h('span', { class: 'chat-text' }, text),
    );
    this.log.append(item);
    while (this.log.childElementCount > MOST_KEPT) this.log.firstElementChild?.remove();
    this.empty.hidden = true;
    this.log.scrollTop = this.log.scrollHeight;
  }

  private toggle(): void {
    const open = this.el.hidden;
    this.el.hidden = !open;
    this.button.setAttribute('aria-expanded', String(open));
    if (!open) return;
    this.unread = 0;
    this.badge.hidden = true;
    this.button.setAttribute('aria-label', 'Show chat');
    this.log.scrollTop = this.log.scrollHeight;
    (this.mayWrite ? this.input : this.title).focus();
  }

  private async submit(): Promise<void> {
    const text = this.input.value.trim();
    if (!text || !this.mayWrite || this.sendButton.disabled) return;
    const to = this.to.disabled ? undefined : this.to.value || undefined;
    const toName = to && this.recipients.get(to);
    this.sendButton.disabled = true;
    this.error.hidden = true;
    try {
      await this.send({ text, to });
      this.add(toName ? `You to ${toName} (privately)` : '', text, true, Boolean(to));
      this.input.value = '';
    } catch {
      this.error.textContent = 'The message was not sent. Try again.';
      this.error.hidden = false;
    } finally {
      this.sendButton.disabled = !this.mayWrite;
    }
  }
}
