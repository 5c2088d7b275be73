"""The GraphQL documents the API sends to Dagster's webserver.

The launch and run-status documents are those of Dagster's own Python client
(``dagster_graphql/client/client_queries.py``), which the API no longer imports: it would load
Dagster's core into every API process. The others are Dagster's schema, queried as such.
"""

from __future__ import annotations

# dagster_graphql's CLIENT_SUBMIT_PIPELINE_RUN_MUTATION.
LAUNCH_RUN = """
mutation GraphQLClientSubmitRun($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on LaunchPipelineRunSuccess { run { runId } }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on PipelineRunConflict { message }
    ... on PipelineConfigValidationInvalid { errors { __typename message path reason } }
    ... on PipelineNotFoundError { message }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""
LAUNCHED = frozenset({"LaunchRunSuccess", "LaunchPipelineRunSuccess"})

# dagster_graphql's GET_PIPELINE_RUN_STATUS_QUERY.
RUN_STATUS = """
query GraphQLClientGetRunStatus($runId: ID!) {
  pipelineRunOrError(runId: $runId) {
    __typename
    ... on PipelineRun { status }
    ... on PipelineRunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

RUN_STATUSES = """
query RunStatuses($ids: [String]) {
  runsOrError(filter: {runIds: $ids}) {
    __typename
    ... on Runs { results { runId status } }
    ... on PythonError { message }
  }
}
"""

REPOSITORIES = """
query Repositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } } }
    ... on PythonError { message }
  }
}
"""

ADD_DYNAMIC_PARTITION = """
mutation AddPartition($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""
PARTITION_ADDED = frozenset({"AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"})

# dagster_graphql's RELOAD_REPOSITORY_LOCATION_MUTATION (its client's reload_repository_location),
# with the errors the mutation can also answer (capture_error, the permission check).
RELOAD_LOCATION = """
mutation GraphQLClientReloadCodeLocation($repositoryLocationName: String!) {
  reloadRepositoryLocation(repositoryLocationName: $repositoryLocationName) {
    __typename
    ... on WorkspaceLocationEntry {
      name
      locationOrLoadError {
        __typename
        ... on RepositoryLocation { isReloadSupported repositories { name } }
        ... on PythonError { message }
      }
    }
    ... on ReloadNotSupported { message }
    ... on RepositoryLocationNotFound { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""
