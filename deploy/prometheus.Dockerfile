# Prometheus for the compose stack's `observability` profile, built here with no registry:
# Debian's own prometheus package on the same debootstrap'd base (deploy/images.sh
# --observability). It scrapes every service's /metrics (deploy/prometheus/prometheus.yml).
ARG BASE=ledgerline/base:bookworm
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown 65532:65532 /prometheus
COPY deploy/prometheus/ /etc/prometheus/
USER 65532:65532
EXPOSE 9090
HEALTHCHECK --interval=3s --timeout=3s --retries=20 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /-/ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.listen-address=0.0.0.0:9090"]
