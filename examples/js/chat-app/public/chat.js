// The chat app's page: joins /api/room/<room>/websocket?user=<name> (through
// the entry, which rate-limits each client) and shows the room's history and
// broadcasts ({"from", "text"}).
const $ = (id) => document.getElementById(id);
let socket = null;

function show({ from, text }) {
  const item = document.createElement('li');
  item.textContent = from === 'system' ? text : `${from}: ${text}`;
  if (from === 'system') item.className = 'system';
  $('log').append(item);
}

$('join').addEventListener('submit', async (event) => {
  event.preventDefault();
  const room = encodeURIComponent($('room').value);
  const user = encodeURIComponent($('user').value);
  const history = await fetch(`/api/room/${room}/history`);
  if (history.ok) for (const message of await history.json()) show(message);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  socket = new WebSocket(`${scheme}://${location.host}/api/room/${room}/websocket?user=${user}`);
  socket.addEventListener('message', (e) => show(JSON.parse(e.data)));
  socket.addEventListener('close', (e) => show({ from: 'system', text: `disconnected (${e.code}) ${e.reason}` }));
  $('join').hidden = true;
  $('say').hidden = false;
});

$('say').addEventListener('submit', (event) => {
  event.preventDefault();
  socket?.send($('text').value);
  $('text').value = '';
});
