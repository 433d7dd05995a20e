/*
 * Baseline: a WebSocket broadcast server on Node's ``ws`` package, as its
 * README broadcasts: every message sent to each client (``client.send``).
 * It speaks bench/baselines/ws_chat.py's JSON at /ws, the same fields.
 * bench/run.py runs it when ``node`` and the ``ws`` package are found
 * (Debian: ``apt-get install node-ws``) and says so when they are not.
 *
 * Usage: node bench/baselines/ws_node_broadcast.js PORT   (127.0.0.1 only)
 */

'use strict';

const { WebSocketServer } = require('ws');

const members = new Map();
let ids = 0;
const server = new WebSocketServer({
    host: '127.0.0.1',
    port: Number(process.argv[2]),
    path: '/ws',
    perMessageDeflate: false,
    maxPayload: 16384,
});

server.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => {
        if (isBinary) return;
        let message;
        try {
            message = JSON.parse(data.toString('utf8'));
        } catch (error) {
            socket.send('{"type":"error","error":"bad-json"}');
            return;
        }
        if (message === null || typeof message !== 'object') return;
        if (message.type === 'nick') {
            const nick = String(message.nick);
            members.set(socket, nick);
            socket.send(JSON.stringify({ type: 'registered', nick, room: 'lobby' }));
        } else if (message.type === 'say' && members.has(socket)) {
            const said = JSON.stringify({
                type: 'message',
                id: String(ids++),
                at: Date.now() / 1000,
                room: 'lobby',
                nick: members.get(socket),
                text: String(message.text),
                action: false,
            });
            for (const member of members.keys()) member.send(said);
        } else if (message.type === 'ping') {
            socket.send('{"type":"pong"}');
        }
    });
    socket.on('close', () => members.delete(socket));
});
