// The chat page: one WebSocket to /ws carrying JSON (docs/web.rst).
// Every string from the server goes into the page with textContent (or as a
// link's href checked to be http(s)), never as markup.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = {
    socket: null,
    nick: null,          // the nickname asked for, then the one given
    registered: false,
    quitting: false,     // the user typed /quit: no reconnect
    rejoining: false,    // reconnecting after a drop: the nickname is known
    retry: 0,            // reconnections tried since the last success
    retryTimer: null,
    rooms: [],           // rooms joined, to rejoin after a reconnection
    rejoin: new Set(),   // rooms being rejoined now (lower case)
    conversations: new Map(),  // "#room" or "@nick" -> conversation
    current: null,
  };

  // Connection

  function connect() {
    clearTimeout(state.retryTimer);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(scheme + "//" + location.host + "/ws");
    state.socket = socket;
    status("Connecting…", true);
    socket.addEventListener("open", () => {
      state.retry = 0;
      send({ type: "nick", nick: state.nick });
    });
    socket.addEventListener("message", (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      handle(event);
    });
    socket.addEventListener("close", (close) => {
      if (state.socket !== socket) return;
      state.socket = null;
      state.registered = false;
      if (state.quitting || close.code === 4000) {
        status("Disconnected. Reload the page to chat again.", true);
        return;
      }
      if (state.nick && state.rooms.length) state.rejoining = true;
      const delay = Math.min(30, 2 ** state.retry) * (0.75 + Math.random() / 2);
      state.retry += 1;
      status("Connection lost; reconnecting in " + Math.ceil(delay) + " s…", true);
      state.retryTimer = setTimeout(connect, delay * 1000);
    });
  }

  function send(message) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(message));
      return true;
    }
    note(state.current, "Not connected: not sent.", "error");
    return false;
  }

  function status(text, offline) {
    const line = $("status");
    line.textContent = text;
    line.classList.toggle("offline", Boolean(offline));
  }

  // What the server says

  const handlers = {
    hello() {},
    registered(event) {
      state.rejoining = false;
      const rejoin = state.rooms.slice();
      state.rejoin = new Set(rejoin.map((room) => room.toLowerCase()));
      state.nick = event.nick;
      state.registered = true;
      status("Connected as " + event.nick);
      $("welcome").hidden = true;
      $("chat").hidden = false;
      if (!state.current) $("input").focus();
      for (const room of rejoin) {
        if (room.toLowerCase() !== event.room.toLowerCase()) send({ type: "join", room });
      }
    },
    room(event) {
      // A room joined (or switched to) now is shown; one rejoined after a
      // reconnection keeps whatever the person was looking at.
      const key = event.room.toLowerCase();
      const rejoined = state.rejoin.delete(key);
      const conversation = open("#" + event.room, event.room, "room");
      conversation.topic = event.topic;
      conversation.members = new Set(event.members);
      if (!state.rooms.includes(event.room)) state.rooms.push(event.room);
      if (!rejoined || !state.current) select(conversation);
      else if (state.current === conversation) showRoom(conversation);
    },
    message(event) { said(event); },
    history(event) {
      // On joining: the latest messages; scrolling up ("before"): older
      // ones.  Either way they go above what is shown, each once.
      const conversation = open("#" + event.room, event.room, "room");
      const items = event.messages
        .filter((m) => !conversation.ids.has(m.id))
        .map((m) => messageItem(conversation, m, true));
      const logs = $("logs");
      const height = logs.scrollHeight;
      conversation.log.prepend(...items);
      if (event.before) {
        conversation.loading = false;
        if (event.messages.length < event.count) conversation.complete = true;
        if (conversation === state.current) logs.scrollTop += logs.scrollHeight - height;
      } else {
        scroll(conversation);
      }
      loadOlder();
    },
    private(event) {
      const other = event.from === state.nick ? event.to : event.from;
      const conversation = open("@" + other, other, "private");
      add(conversation, messageItem(conversation, {
        id: event.id, at: event.at, nick: event.from, text: event.text, action: false,
        notice: event.notice,
      }, false));
    },
    joined(event) {
      const conversation = roomOf(event.room);
      if (!conversation) return;
      conversation.members.add(event.nick);
      note(conversation, event.nick + " joined", "notice", event.at);
      members();
    },
    parted(event) {
      const conversation = roomOf(event.room);
      if (!conversation) return;
      if (event.nick === state.nick) {
        close(conversation);
        return;
      }
      conversation.members.delete(event.nick);
      note(conversation, event.nick + " left" + because(event.reason), "notice", event.at);
      members();
    },
    quit(event) { left(event.nick, event.nick + " quit" + because(event.reason), event.at); },
    kicked(event) {
      left(event.nick, event.nick + " was kicked by " + event.by + because(event.reason),
        event.at);
    },
    renamed(event) {
      if (event.old === state.nick) state.nick = event.new;
      for (const conversation of state.conversations.values()) {
        if (conversation.members.delete(event.old)) {
          conversation.members.add(event.new);
          note(conversation, event.old + " is now " + event.new, "notice", event.at);
        }
      }
      if (event.old === state.nick || event.new === state.nick) {
        status("Connected as " + state.nick);
      }
      members();
    },
    topic(event) {
      const conversation = roomOf(event.room);
      if (!conversation) return;
      conversation.topic = event.topic;
      note(conversation, event.nick + (event.topic ? " set the topic: " + event.topic
        : " cleared the topic"), "notice", event.at);
      if (state.current === conversation) showRoom(conversation);
    },
    announcement(event) {
      for (const conversation of state.conversations.values()) {
        note(conversation, "Announcement from " + event.by + ": " + event.text, "notice");
      }
    },
    reply(event) { note(state.current, event.text, "reply"); },
    pong() {},
    error(event) {
      if (!state.registered && state.rejoining && event.error === "NickInUse") {
        // After a dropped connection the server may still hold the old one
        // (until its next ping goes unanswered): try again a little later.
        status("Waiting for the old connection to be let go…", true);
        if (state.socket) state.socket.close();
        return;
      }
      if (!state.registered) {
        $("welcome").hidden = false;
        $("chat").hidden = true;
        $("nick-error").textContent = event.text;
        $("nick").focus();
        return;
      }
      note(state.current, event.text, "error");
    },
    bye(event) {
      if (event.error) state.quitting = true;
      if (state.registered) note(state.current, event.text, event.error ? "error" : "notice");
      else $("nick-error").textContent = event.text;
    },
  };

  function handle(event) {
    const handler = handlers[event.type];
    if (handler) handler(event);
  }

  function because(reason) { return reason ? " (" + reason + ")" : ""; }

  function left(nick, text, at) {
    for (const conversation of state.conversations.values()) {
      if (conversation.members.delete(nick)) note(conversation, text, "notice", at);
    }
    members();
  }

  // Conversations

  function roomOf(name) {
    return state.conversations.get("#" + name.toLowerCase()) || null;
  }

  function open(key, name, kind) {
    key = key.toLowerCase();
    let conversation = state.conversations.get(key);
    if (conversation) return conversation;
    const log = document.createElement("ol");
    log.className = "log";
    log.hidden = true;
    log.setAttribute("aria-label", (kind === "room" ? "#" : "") + name);
    $("logs").append(log);
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "open";
    button.textContent = (kind === "room" ? "#" : "") + name;
    const unread = document.createElement("span");
    unread.className = "unread";
    unread.hidden = true;
    button.append(unread);
    button.addEventListener("click", () => select(conversation));
    item.append(button);
    if (kind === "room") {
      const leave = document.createElement("button");
      leave.type = "button";
      leave.className = "plain";
      leave.textContent = "×";
      leave.setAttribute("aria-label", "Leave #" + name);
      leave.addEventListener("click", () => send({ type: "part", room: name }));
      item.append(leave);
    }
    $(kind === "room" ? "rooms" : "privates").append(item);
    conversation = {
      key, name, kind, log, item, unread, topic: "", members: new Set(),
      ids: new Set(), count: 0, loading: false, complete: false,
    };
    state.conversations.set(key, conversation);
    return conversation;
  }

  function close(conversation) {
    conversation.log.remove();
    conversation.item.remove();
    state.conversations.delete(conversation.key);
    state.rooms = state.rooms.filter((room) => room.toLowerCase() !== conversation.key.slice(1));
    if (state.current === conversation) {
      state.current = null;
      const next = state.conversations.values().next().value;
      if (next) select(next);
    }
  }

  function select(conversation) {
    if (state.current) {
      state.current.log.hidden = true;
      state.current.item.classList.remove("current");
    }
    state.current = conversation;
    conversation.log.hidden = false;
    conversation.item.classList.add("current");
    conversation.count = 0;
    conversation.unread.hidden = true;
    showRoom(conversation);
    scroll(conversation);
    $("side").classList.remove("open");
    $("menu").setAttribute("aria-expanded", "false");
  }

  function showRoom(conversation) {
    const room = conversation.kind === "room";
    $("title").textContent = (room ? "#" : "Private: ") + conversation.name;
    $("topic").textContent = room ? (conversation.topic || "(no topic)") : "";
    $("topic-edit").hidden = !room;
    members();
  }

  function members() {
    const list = $("members");
    list.replaceChildren();
    const conversation = state.current;
    if (!conversation || conversation.kind !== "room") return;
    for (const nick of [...conversation.members].sort()) {
      const item = document.createElement("li");
      item.textContent = nick;
      item.style.color = colour(nick);
      list.append(item);
    }
  }

  // Lines of a conversation

  function add(conversation, item) {
    if (!conversation) return;
    conversation.log.append(item);
    // One's own lines are not news.
    if (conversation !== state.current && !item.classList.contains("mine")) {
      conversation.count += 1;
      conversation.unread.textContent = String(conversation.count);
      conversation.unread.hidden = false;
    }
    scroll(conversation);
  }

  function scroll(conversation) {
    if (conversation === state.current) {
      const logs = $("logs");
      logs.scrollTop = logs.scrollHeight;
    }
  }

  function said(event) {
    const conversation = roomOf(event.room);
    if (!conversation || conversation.ids.has(event.id)) return;
    add(conversation, messageItem(conversation, event, false));
  }

  function messageItem(conversation, message, history) {
    conversation.ids.add(message.id);
    const item = document.createElement("li");
    item.className = "message" + (history ? " history" : "");
    item.dataset.id = message.id;
    if (message.nick === state.nick) item.classList.add("mine");
    item.append(timeOf(message.at));
    const nick = document.createElement("span");
    nick.className = "nick";
    nick.style.color = colour(message.nick);
    // A notice (IRC's NOTICE, /notice) shows as -nick-, as IRC clients do.
    if (message.notice) item.classList.add("said-notice");
    nick.textContent = message.notice ? "-" + message.nick + "-"
      : message.action ? "* " + message.nick : message.nick;
    const text = document.createElement("span");
    text.className = "text";
    linkify(text, message.text);
    item.append(nick, text);
    return item;
  }

  function note(conversation, text, kind, at) {
    if (!conversation) {
      if (!state.registered) $("nick-error").textContent = text;
      return;
    }
    const item = document.createElement("li");
    item.className = kind;
    if (at) item.append(timeOf(at));
    const words = document.createElement("span");
    words.textContent = text;
    item.append(words);
    conversation.log.append(item);
    scroll(conversation);
  }

  function timeOf(at) {
    const when = new Date(at * 1000);
    const time = document.createElement("time");
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    time.title = when.toLocaleString();
    return time;
  }

  const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+/g;

  function linkify(element, text) {
    let last = 0;
    for (const match of text.matchAll(URL_PATTERN)) {
      element.append(document.createTextNode(text.slice(last, match.index)));
      const link = document.createElement("a");
      link.href = match[0];
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.textContent = match[0];
      element.append(link);
      last = match.index + match[0].length;
    }
    element.append(document.createTextNode(text.slice(last)));
  }

  function colour(nick) {
    let hash = 0;
    for (const char of nick) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
    // Dark enough on white for WCAG AA at any hue.
    return "hsl(" + (hash % 360) + ", 70%, 30%)";
  }

  // Scrolled to the top of a room (or a room too short to scroll): ask for
  // the messages said before the oldest one shown.
  function loadOlder() {
    const conversation = state.current;
    if (!conversation || conversation.kind !== "room" || conversation.complete) return;
    if (conversation.loading || $("logs").scrollTop > 40) return;
    const oldest = conversation.log.querySelector("li.message[data-id]");
    if (!oldest) return;
    conversation.loading = send({
      type: "history", room: conversation.name, before: oldest.dataset.id, count: 50,
    });
  }

  $("logs").addEventListener("scroll", loadOlder);

  // What the user does

  $("nick-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const nick = $("nick").value.trim();
    if (!nick) return;
    $("nick-error").textContent = "";
    state.nick = nick;
    state.quitting = false;
    if (state.socket && state.socket.readyState === WebSocket.OPEN) send({ type: "nick", nick });
    else connect();
  });

  $("say-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const input = $("input");
    const text = input.value;
    if (!text.trim()) return;
    const conversation = state.current;
    let sent;
    if (text.startsWith("/") && !text.startsWith("//")) {
      if (/^\/(quit|exit)\b/i.test(text)) state.quitting = true;
      const message = { type: "input", text };
      if (conversation && conversation.kind === "room") message.room = conversation.name;
      sent = send(message);
    } else if (conversation && conversation.kind === "private") {
      sent = send({ type: "msg", to: conversation.name, text: text.replace(/^\/\//, "/") });
    } else if (conversation) {
      sent = send({ type: "input", room: conversation.name, text });
    }
    if (sent) input.value = "";
  });

  $("join-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const room = $("join-room").value.trim().replace(/^#/, "");
    if (room && send({ type: "join", room })) $("join-room").value = "";
  });

  $("topic-edit").addEventListener("click", () => {
    const form = $("topic-form");
    form.hidden = !form.hidden;
    if (!form.hidden) {
      $("topic-text").value = state.current ? state.current.topic : "";
      $("topic-text").focus();
    }
  });

  $("topic-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    const conversation = state.current;
    if (conversation && conversation.kind === "room") {
      send({ type: "topic", room: conversation.name, topic: $("topic-text").value });
    }
    $("topic-form").hidden = true;
    $("input").focus();
  });

  $("menu").addEventListener("click", () => {
    const open = $("side").classList.toggle("open");
    $("menu").setAttribute("aria-expanded", String(open));
  });

  // Alt+Up / Alt+Down: the previous or next conversation; Escape: the input.
  document.addEventListener("keydown", (key) => {
    if (key.key === "Escape") {
      $("topic-form").hidden = true;
      $("input").focus();
      return;
    }
    if (!key.altKey || (key.key !== "ArrowUp" && key.key !== "ArrowDown")) return;
    const all = [...state.conversations.values()];
    if (!all.length) return;
    const index = all.indexOf(state.current);
    const step = key.key === "ArrowUp" ? -1 : 1;
    select(all[(index + step + all.length) % all.length]);
    key.preventDefault();
  });
})();
