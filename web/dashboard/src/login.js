// The login page: the server checks the token and sets the session cookie;
// the token also stays in this tab's sessionStorage for state-changing calls.
import { api, TOKEN_KEY } from './api.js';

const form = document.getElementById('login');
const err = document.getElementById('login-error');
if (new URLSearchParams(location.search).get('expired')) err.textContent = 'Your session ended: log in again.';
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  err.textContent = '';
  const token = document.getElementById('token').value.trim();
  try {
    await api('/api/v1/session', { method: 'POST', body: { token } });
    sessionStorage.setItem(TOKEN_KEY, token);
    const next = new URLSearchParams(location.search).get('next') || '';
    location.href = '/' + (next.startsWith('#') ? next : '');
  } catch (e) {
    err.textContent = e.message;
  }
});
