#!/bin/sh
# Written by gpu-booking: sets the root password hash and SSH keys, starts sshd and the
# booking's extra command, then keeps the container alive until it is stopped.
dir=/.gpu-booking
if [ -s "$dir/password.hash" ]; then
    if command -v chpasswd >/dev/null 2>&1; then
        printf 'root:%s\n' "$(cat "$dir/password.hash")" | chpasswd -e || echo "gpu-booking: chpasswd failed" >&2
    else
        echo "gpu-booking: this image has no chpasswd; the booking password is not set" >&2
    fi
fi
if [ -s "$dir/authorized_keys" ]; then
    mkdir -p /root/.ssh && chmod 700 /root/.ssh
    touch /root/.ssh/authorized_keys
    while IFS= read -r key; do
        grep -qxF "$key" /root/.ssh/authorized_keys || printf '%s\n' "$key" >> /root/.ssh/authorized_keys
    done < "$dir/authorized_keys"
    chmod 600 /root/.ssh/authorized_keys
fi
sshd_path=$(command -v sshd 2>/dev/null || { [ -x /usr/sbin/sshd ] && echo /usr/sbin/sshd; })
if [ -n "$sshd_path" ]; then
    mkdir -p /run/sshd
    command -v ssh-keygen >/dev/null 2>&1 && ssh-keygen -A >/dev/null 2>&1
    "$sshd_path" -o PermitRootLogin=yes || echo "gpu-booking: sshd did not start" >&2
else
    echo "gpu-booking: this image has no sshd; nobody can log in by SSH" >&2
fi
if [ -s "$dir/extra_command" ]; then
    sh "$dir/extra_command" &
fi
trap 'exit 0' TERM INT
while :; do
    sleep 3600 &
    wait $!
done
