# gpuseg on the RAPIDS base image (cuDF, cuML, dask-cuda, CuPy preinstalled).
#   docker build -t gpuseg .
#   docker run --rm --gpus all -v "$PWD/data:/data" gpuseg run --input /data/events.csv --out /data/gpuseg-out
FROM rapidsai/base:26.10-cuda13-py3.12

WORKDIR /opt/gpuseg
COPY --chown=rapids:conda pyproject.toml README.md ./
COPY --chown=rapids:conda gpuseg ./gpuseg
# RAPIDS, pandas, pyarrow and numpy come with the image; pip adds what is missing
# (scikit-learn, scipy, matplotlib, jinja2) without touching the RAPIDS pins.
RUN pip install --no-cache-dir "scikit-learn>=1.4" "scipy>=1.11" "matplotlib>=3.8" "jinja2>=3.1" \
 && pip install --no-cache-dir --no-deps . \
 && python -c "import gpuseg, sys; sys.exit('gpuseg imported cupy' if 'cupy' in sys.modules else 0)"

WORKDIR /data
ENTRYPOINT ["python", "-m", "gpuseg"]
CMD ["run"]
